"""Integer export: what a fixed-point runtime (FPGA, NPU, MCU) executes, as npz + json manifest.

    python3 quantize/export_int.py --weights runs/ptq/exp/yolov3-mini_ptq_max.pt
    python3 -m quantize.export_int --weights qat.pt --format q8 --project runs/int --name mini

Writes ``<stem>_int.npz`` (integer weights, integer biases and requantization multipliers) and
``<stem>_int.json``: the cfg, the format, and per layer its type, inputs and integer parameters.
A tensor t is stored as integers q with t = (q - zero_point) * scale. Formats:

  s8   8-bit, per-tensor scale and zero point (TFLite style), any real multipliers
  q8   8-bit Q format: every scale a power of two and no zero points (train or calibrate with
       --FPGA --BN_Fold), so requantizing is a rounding shift
  q16  the same in 16 bits (quantize/ptq.py --format q16), accumulators in 64 bits

A conv computes, in integers only (quantize/fixed_point.py's requantize(a, M, n, B) is
(a M + B) / 2^n rounded half to even)::

    acc[c] = sum over its window (x - x_zero_point) * w[c]
    out[c] = clamp(out_zero_point + requantize(acc[c], M[c], n[c], B[c]), qmin, qmax)

with M[c] / 2^n[c] = x_scale * w_scale[c] / out_scale (BN folded) and B[c] the bias at the
output's scale with n[c] fraction bits: 32-bit biases at the accumulator's scale (TFLite's) would
move outputs by up to half a step of x_scale * w_scale, which flips roundings the fake-quant
model does not. relu takes max(.., 0) before adding the zero point; leaky uses its second
multiplier and bias (the first times its slope) where that result is negative (leaky's 0.1 is
not a power of two: in q formats that one is a multiply, not a shift). A shortcut computes
``requantize(sum_k (q_k - z_k) M_k, 1, n)``; routes, upsample and maxpool move integers
(their inputs share one scale). The image enters as uint8 pixels p: q = clamp(zero_point +
requantize(p, M, n)) with M / 2^n = 1 / (255 scale). The model's outputs are the integers the
yolo layers (and a segmentation head) read; decoding follows the cfg's [yolo] sections.
quantize/int_runtime.py runs the format; quantize/export_c.py writes it as C.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from torch import nn

from models.darknet import is_quantized
from models.layers import (ConvBNAct, Dropout, MaxPool, Route, SegmentHead, Upsample,
                           YoloLayer)
from models.summary import layer_shapes
from quantize.fixed_point import FixedPointError, bits_for, is_power_of_two, multiplier
from quantize.formats import FORMATS
from quantize.int_runtime import FORMAT
from quantize.loader import load_model
from quantize.modules import QuantConvBNAct, QuantShortcut
from quantize.qdq import act_qparams, output_quantizers
from utils.cli import friendly_errors
from utils.errors import ToolkitError
from utils.files import atomic_path, atomic_write_text, whole_or_none
from utils.log import LOGGER
from utils.options import Parser, keyword_options
from utils.runs import increment_path

ACTIVATIONS = {nn.Identity: 'linear', nn.ReLU: 'relu', nn.LeakyReLU: 'leaky'}
EXACT_BITS = 53  # float64 holds every integer below 2^53: the runtime's GEMM is exact below


class IntExportError(ToolkitError, ValueError):
    """A model this format cannot express; the message names the layer."""


def qparams_dict(q):
    """Scale, zero point and range; unsigned ranges move down by half so every format is signed
    (q - zero_point is unchanged)."""
    scale, zp, qmin, qmax = act_qparams(q)
    if qmin == 0:
        half = (qmax + 1) // 2
        zp, qmin, qmax = zp - half, -half, qmax - half
    return {'scale': scale, 'zero_point': zp, 'qmin': qmin, 'qmax': qmax}


def activation_name(act, i):
    for kind, name in ACTIVATIONS.items():
        if isinstance(act, kind):
            return name
    raise IntExportError(f'layer {i}: activation {type(act).__name__} has no integer form here '
                         '(linear, relu and leaky do)')


def int_dtype(q):
    return np.int8 if np.abs(q).max(initial=0) <= 127 else np.int16


def store_multiplier(arrays, key, real, bias, acc_bits, i):
    """M, n and the bias (in output steps) as B = bias 2^n, under ``key``."""
    try:
        m, n = multiplier(real, acc_bits)
    except FixedPointError as e:
        raise IntExportError(f'layer {i}: {e}') from None
    arrays[f'{key}m'], arrays[f'{key}n'] = m, n
    arrays[f'{key}b'] = np.rint(bias * np.exp2(n.astype(np.float64))).astype(np.int64)
    return {'m': f'{key}m', 'n': f'{key}n', 'b': f'{key}b'}


def accumulator_bits(w, bias, p, i):
    """Bits the worst-case accumulator needs: sum |w| times the largest |x - zero point|."""
    x_max = max(abs(p['qmin'] - p['zero_point']), abs(p['qmax'] - p['zero_point']))
    bound = np.abs(w).reshape(len(w), -1).sum(1).max() * x_max + np.abs(bias).max(initial=0)
    bits = bits_for(bound)
    if bits >= EXACT_BITS:
        raise IntExportError(f'layer {i}: its accumulator may need {bits} bits, more than 64-bit '
                             'integers and float64 GEMMs hold exactly')
    return bits


def conv_entry(i, m, in_q, arrays):
    if m.out_quant is None:
        raise IntExportError(f'layer {i}: its output is float (quantized with float heads); '
                             'a fixed-point export needs every output on an integer grid: '
                             'calibrate with quantize/ptq.py --int8-heads (or --format q8/q16)')
    q, w_scale, bias = (t.double().numpy() for t in m.integer_weights())
    real = in_q['scale'] * w_scale
    acc_bits = accumulator_bits(q, bias / real, in_q, i)
    arrays[f'w{i}'], arrays[f'ws{i}'] = q.astype(int_dtype(q)), w_scale.astype(np.float64)
    out = qparams_dict(m.out_quant)
    c = m.conv
    entry = {'type': 'conv', 'index': i, 'weight': f'w{i}',
             'weight_scale': f'ws{i}', 'stride': c.stride[0], 'pad': c.padding[0],
             'dilation': c.dilation[0], 'groups': c.groups, 'size': c.kernel_size[0],
             'activation': activation_name(m.act, i), 'acc_bits': acc_bits, 'in': in_q,
             'out': out}
    mult, b = real / out['scale'], bias / out['scale']
    entry['requant'] = store_multiplier(arrays, f'r{i}', mult, b, acc_bits, i)
    if isinstance(m.act, nn.LeakyReLU):
        k = entry['slope'] = m.act.negative_slope
        entry['requant_neg'] = store_multiplier(arrays, f'rn{i}', mult * k, b * k, acc_bits, i)
    return entry


def shortcut_entry(i, m, quantizers, arrays):
    s = m.shortcut
    if s.weights is not None or not isinstance(s.act, nn.Identity):
        raise IntExportError(f'layer {i} (shortcut): weighted or activated residual sums have no '
                             'integer form here')
    ins = [i - 1, *m.froms]
    in_q = [qparams_dict(quantizers[j]) for j in ins]
    out = qparams_dict(m.out_quant)
    reals = np.array([p['scale'] / out['scale'] for p in in_q])
    acc_bits = max(bits_for(p['qmax'] - p['qmin']) for p in in_q) + len(ins)
    mm, nn_ = multiplier(reals.max(), acc_bits)
    n = int(nn_[0])  # one shift for the sum: each input's M on the largest one's scale
    ms = np.rint(reals * 2.0 ** n).astype(np.int64)
    while n > 0 and (ms % 2 == 0).all():
        ms, n = ms // 2, n - 1
    arrays[f's{i}m'] = ms
    return {'type': 'shortcut', 'index': i, 'from': ins, 'in': in_q, 'out': out,
            'multipliers': f's{i}m', 'shift': n}


def layer_entry(i, m, quantizers, arrays, sizes):
    prev = quantizers[i - 1] if i else None
    if isinstance(m, QuantConvBNAct):
        in_q = qparams_dict(m.in_quant) if m.in_quant is not None else qparams_dict(prev)
        return conv_entry(i, m, in_q, arrays)
    if isinstance(m, QuantShortcut):
        if len({sizes[j] for j in [i - 1, *m.froms]}) > 1:
            raise IntExportError(f'layer {i} (shortcut): inputs of different shapes (a partial '
                                 'residual) have no integer form here')
        return shortcut_entry(i, m, quantizers, arrays)
    entry = moving_entry(i, m)
    if entry is None:
        raise IntExportError(f'layer {i} ({type(m).__name__}) has no integer form here')
    return entry


def moving_entry(i, m):
    """The entry of a layer that moves integers without arithmetic on them, or None."""
    if isinstance(m, Route):
        return {'type': 'route', 'index': i, 'from': list(m.froms), 'groups': m.groups,
                'group_id': m.group_id}
    if isinstance(m, Dropout):  # the identity at inference: a route from the layer before
        return {'type': 'route', 'index': i, 'from': [i - 1], 'groups': 1, 'group_id': 0}
    if isinstance(m, Upsample):
        return {'type': 'upsample', 'index': i, 'stride': m.stride}
    if isinstance(m, MaxPool):
        return {'type': 'maxpool', 'index': i, 'size': m.size, 'stride': m.stride,
                'pad': list(m.pad)}  # left, right, top, bottom; the max over real pixels
    if isinstance(m, (YoloLayer, SegmentHead)):  # the head conv's integers are the output
        return {'type': 'yolo' if isinstance(m, YoloLayer) else 'seg', 'index': i, 'from': i - 1}
    return None


def check_layer(i, m, quantizers):
    """Integers flow only between quantized layers, and a join needs one scale for its inputs."""
    if i == 0 and not (isinstance(m, QuantConvBNAct) and m.in_quant is not None):
        raise IntExportError('layer 0 must be a quantized conv (it quantizes the image)')
    if isinstance(m, Route) and quantizers[i] is None:
        raise IntExportError(f'layer {i} (route) joins tensors with different scales; integer '
                             'export needs shared scales: train with --quantized 3 or --FPGA')
    reads_prev = isinstance(m, (Upsample, MaxPool, Dropout)) or (
        isinstance(m, QuantConvBNAct) and m.in_quant is None)
    if i and reads_prev and quantizers[i - 1] is None:
        raise IntExportError(f'layer {i} ({type(m).__name__}) reads layer {i - 1}, which has no '
                             'integer output')


def input_entry(p):
    m, n = multiplier(1 / (255 * p['scale']), 8)
    return {**p, 'm': int(m[0]), 'n': int(n[0])}


def integer_model(model, fmt=''):
    """(manifest dict, arrays dict) of a quantized model in format ``fmt`` ('' = the one its
    scales and bits fit)."""
    if not is_quantized(model):
        raise IntExportError('the model is not quantized: train with --quantized, or run '
                             'quantize/ptq.py first')
    model = model.float().cpu().eval()
    quantizers = output_quantizers(model)
    sizes = layer_shapes(model, model.img_size)[1]
    arrays, layers = {}, []
    for i, m in enumerate(model.module_list):
        if isinstance(m, ConvBNAct):
            raise IntExportError(
                f"layer {i} is a float conv (precision={model.blocks[i + 1].get('precision')} "
                'in the cfg): the integer export needs every conv int8')
        check_layer(i, m, quantizers)
        layers.append(layer_entry(i, m, quantizers, arrays, sizes))
    manifest = {'format': FORMAT, 'cfg': model.cfg_text, 'quant': model.quant_config,
                'input': input_entry(layers[0]['in']),
                'outputs': [e['from'] for e in layers if e['type'] in ('yolo', 'seg')],
                'layers': layers}
    manifest['number_format'] = check_format(manifest, arrays, fmt or fitting_format(manifest))
    return manifest, arrays


def tensors(manifest):
    """(layer, qparams) of every stored activation: the image's and each layer's output."""
    yield 'input', manifest['input']
    for e in manifest['layers']:
        if 'out' in e:
            yield e['index'], e['out']


def fitting_format(manifest):
    widest = max(p['qmax'] for _, p in tensors(manifest))
    q_format = all(is_power_of_two(p['scale']) and p['zero_point'] == 0
                   for _, p in tensors(manifest))
    if widest > 127:
        return 'q16' if q_format else 's8'  # s8 refuses it below, naming the layer
    return 'q8' if q_format else 's8'


def check_format(manifest, arrays, fmt):
    if fmt not in FORMATS:
        raise IntExportError(f"--format must be one of {', '.join(FORMATS)}, got '{fmt}'")
    top = 2 ** (FORMATS[fmt].bits - 1)
    for i, p in tensors(manifest):
        if p['qmin'] < -top or p['qmax'] > top - 1:
            raise IntExportError(f'layer {i}: its output holds {p["qmin"]}..{p["qmax"]}, more '
                                 f'than {fmt} holds (quantize with at most '
                                 f'{FORMATS[fmt].bits}-bit activations)')
        if fmt != 's8' and not (is_power_of_two(p['scale']) and p['zero_point'] == 0):
            raise IntExportError(f'layer {i}: scale {p["scale"]:.6g} and zero point '
                                 f'{p["zero_point"]}: {fmt} needs power-of-two scales without '
                                 'zero points (--FPGA --BN_Fold, or ptq.py --format)')
    for e in manifest['layers']:
        if e['type'] != 'conv':
            continue
        w = arrays[e['weight']]
        if np.abs(w).max(initial=0) > top - 1:
            raise IntExportError(f"layer {e['index']}: weights up to {np.abs(w).max()} do not "
                                 f"fit {fmt} (DoReFa's 8-bit first and last convs have odd levels "
                                 'up to 255: 9 bits)')
        if fmt != 's8' and not is_power_of_two(arrays[e['requant']['m']], rtol=0):
            raise IntExportError(f"layer {e['index']}: its requantization is not a shift in "
                                 f'{fmt}: fold BN into the weights (--BN_Fold) with --FPGA')
    return fmt


@keyword_options
def run(weights='', format='', project='runs/int', name='exp', exist_ok=False):
    model = load_model(weights)
    manifest, arrays = integer_model(model, format)
    save_dir = increment_path(project, name, exist_ok)
    stem = save_dir / f'{Path(weights).stem}_int'
    with whole_or_none([f'{stem}.npz']):
        with atomic_path(f'{stem}.npz') as tmp:
            np.savez(tmp, **arrays)
        atomic_write_text(f'{stem}.json', json.dumps(manifest, indent=1))  # last: a whole set
    n = sum(a.size for k, a in arrays.items() if k.startswith('w') and not k.startswith('ws'))
    LOGGER.info(f"wrote {stem}.npz ({n:,} integer weights, {manifest['number_format']}) and "
                f"{stem}.json ({len(manifest['layers'])} layers)")
    return [f'{stem}.npz', f'{stem}.json']


def parser():
    p = Parser(prog='quantize/export_int.py', description=__doc__.splitlines()[0])
    p.add_argument('--weights', required=True, help='a QAT (--quantized) or PTQ checkpoint')
    p.add_argument('--format', default='', choices=['', *FORMATS],
                   help='number format (default: the one the checkpoint fits)')
    p.add_argument('--project', default='runs/int')
    p.add_argument('--name', default='exp')
    p.add_argument('--exist-ok', action='store_true')
    return p


def parse_opt(argv=None):
    return parser().parse_args(argv)


@friendly_errors
def main(argv=None):
    run(**vars(parse_opt(argv)))


if __name__ == '__main__':
    main()
