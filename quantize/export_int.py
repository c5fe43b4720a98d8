"""Integer export: what a fixed-point runtime (FPGA, NPU, MCU) executes, as npz + json manifest.

    python3 quantize/export_int.py --weights runs/train/qat/weights/best.pt
    python3 -m quantize.export_int --weights qat.pt --project runs/int --name mini

Writes ``<stem>_int.npz`` (integer weights and int32 biases, per-channel scales) and
``<stem>_int.json``: the cfg, and per layer its type, inputs and integer parameters. A tensor t
is stored as integers q with t = (q - zero_point) * scale. A quantized conv computes

    acc[c] = sum over its window (x_q - x_zero_point) * w_q[c] + bias_q[c]       (int32)
    y[c]   = acc[c] * x_scale * w_scale[c]                       (BN already folded in)
    out_q  = clamp(round(activation(y) / out_scale) + out_zero_point, qmin, qmax)

For leaky, relu and linear (activation(k y) = k activation(y) for k > 0) the last two lines are
``round(activation(acc * multiplier[c]))``, multiplier = x_scale * w_scale / out_scale; where
every multiplier is 2^-shift (``--FPGA --BN_Fold``: BN left outside the weights would scale them
by non-powers of two) ``shift`` is listed too: a shift instead of a multiply.
A shortcut sums its dequantized inputs and requantizes; routes, upsample and maxpool move
integers (their inputs share one scale). The model's outputs are the yolo layers' input
integers; decoding follows the cfg's [yolo] sections. tests/int_runtime.py is a numpy reference
runtime for this format, checked against the fake-quant model.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from torch import nn

from models.darknet import is_quantized
from models.layers import ConvBNAct, MaxPool, Route, Upsample, YoloLayer
from quantize.loader import load_model
from quantize.modules import QuantConvBNAct, QuantShortcut
from quantize.qdq import act_qparams, output_quantizers
from utils.cli import friendly_errors
from utils.errors import ToolkitError
from utils.files import atomic_path, atomic_write_text
from utils.log import LOGGER
from utils.options import Parser
from utils.runs import increment_path

ACTIVATIONS = {nn.Identity: 'linear', nn.ReLU: 'relu', nn.LeakyReLU: 'leaky', nn.SiLU: 'swish',
               nn.Hardswish: 'hswish', nn.Mish: 'mish', nn.Sigmoid: 'logistic'}
HOMOGENEOUS = ('linear', 'relu', 'leaky')


class IntExportError(ToolkitError, ValueError):
    """A model this format cannot express; the message names the layer."""


def qparams_dict(q):
    scale, zp, qmin, qmax = act_qparams(q)
    return {'scale': scale, 'zero_point': zp, 'qmin': qmin, 'qmax': qmax}


def activation_name(act, i):
    for kind, name in ACTIVATIONS.items():
        if isinstance(act, kind):
            return name
    raise IntExportError(f'layer {i}: activation {type(act).__name__} has no integer form here')


def int_dtype(q):
    return np.int8 if np.abs(q).max(initial=0) <= 127 else np.int16


def conv_entry(i, m, in_q, arrays):
    q, w_scale, bias = (t.double().numpy() for t in m.integer_weights())
    in_scale = in_q['scale']
    arrays[f'w{i}'] = q.astype(int_dtype(q))
    arrays[f'b{i}'] = np.round(bias / (in_scale * w_scale)).astype(np.int32)
    arrays[f'ws{i}'] = w_scale.astype(np.float64)
    out = qparams_dict(m.out_quant)
    c = m.conv
    entry = {'type': 'conv', 'index': i, 'weight': f'w{i}', 'bias': f'b{i}',
             'weight_scale': f'ws{i}', 'stride': c.stride[0], 'pad': c.padding[0],
             'groups': c.groups, 'activation': activation_name(m.act, i), 'in': in_q, 'out': out}
    if isinstance(m.act, nn.LeakyReLU):
        entry['slope'] = m.act.negative_slope
    if entry['activation'] in HOMOGENEOUS:
        mult = in_scale * w_scale / out['scale']
        arrays[f'm{i}'] = mult
        entry['multiplier'] = f'm{i}'
        shift = np.rint(-np.log2(mult))
        if np.allclose(mult, 2.0 ** -shift, rtol=1e-9, atol=0):  # --FPGA with BN folded
            entry['shift'] = [int(s) for s in shift]
    return entry


def layer_entry(i, m, quantizers, arrays):
    prev = quantizers[i - 1] if i else None
    if isinstance(m, QuantConvBNAct):
        in_q = qparams_dict(m.in_quant) if m.in_quant is not None else qparams_dict(prev)
        return conv_entry(i, m, in_q, arrays)
    if isinstance(m, QuantShortcut):
        ins = [i - 1, *m.froms]
        return {'type': 'shortcut', 'index': i, 'from': ins,
                'in': [qparams_dict(quantizers[j]) for j in ins], 'out': qparams_dict(m.out_quant)}
    if isinstance(m, Route):
        return {'type': 'route', 'index': i, 'from': list(m.froms), 'groups': m.groups,
                'group_id': m.group_id}
    if isinstance(m, Upsample):
        return {'type': 'upsample', 'index': i, 'stride': m.stride}
    if isinstance(m, MaxPool):
        return {'type': 'maxpool', 'index': i, 'size': m.size, 'stride': m.stride,
                'pad': list(m.pad)}  # left, right, top, bottom; the max over real pixels
    if isinstance(m, YoloLayer):
        return {'type': 'yolo', 'index': i, 'from': i - 1}
    raise IntExportError(f'layer {i} ({type(m).__name__}) has no integer form here')


def check_layer(i, m, quantizers):
    """Integers flow only between quantized layers, and a join needs one scale for its inputs."""
    if i == 0 and not (isinstance(m, QuantConvBNAct) and m.in_quant is not None):
        raise IntExportError('layer 0 must be a quantized conv (it quantizes the image)')
    if isinstance(m, Route) and quantizers[i] is None:
        raise IntExportError(f'layer {i} (route) joins tensors with different scales; integer '
                             'export needs shared scales: train with --quantized 3 or --FPGA')
    reads_prev = isinstance(m, (Upsample, MaxPool)) or (
        isinstance(m, QuantConvBNAct) and m.in_quant is None)
    if i and reads_prev and quantizers[i - 1] is None:
        raise IntExportError(f'layer {i} ({type(m).__name__}) reads layer {i - 1}, which has no '
                             'integer output')


def integer_model(model):
    """(manifest dict, arrays dict) of a quantized model."""
    if not is_quantized(model):
        raise IntExportError('the model is not quantized: train with --quantized, or run '
                             'quantize/ptq.py first')
    model = model.float().cpu().eval()
    quantizers = output_quantizers(model)
    arrays, layers = {}, []
    for i, m in enumerate(model.module_list):
        if isinstance(m, ConvBNAct):
            raise IntExportError(
                f"layer {i} is a float conv (precision={model.blocks[i + 1].get('precision')} "
                'in the cfg): the integer export needs every conv int8')
        check_layer(i, m, quantizers)
        layers.append(layer_entry(i, m, quantizers, arrays))
    manifest = {'format': 'yolo-int/1', 'cfg': model.cfg_text, 'quant': model.quant_config,
                'input': layers[0]['in'], 'outputs': [e['from'] for e in layers
                                                      if e['type'] == 'yolo'],
                'layers': layers}
    return manifest, arrays


def run(weights='', project='runs/int', name='exp', exist_ok=False):
    model = load_model(weights)
    manifest, arrays = integer_model(model)
    save_dir = increment_path(project, name, exist_ok)
    stem = save_dir / f'{Path(weights).stem}_int'
    with atomic_path(f'{stem}.npz') as tmp:
        np.savez(tmp, **arrays)
    atomic_write_text(f'{stem}.json', json.dumps(manifest, indent=1))  # last: the set is whole
    n = sum(a.size for k, a in arrays.items() if k.startswith('w'))
    LOGGER.info(f'wrote {stem}.npz ({n:,} integer weights) and {stem}.json '
                f"({len(manifest['layers'])} layers)")
    return [f'{stem}.npz', f'{stem}.json']


def parser():
    p = Parser(prog='quantize/export_int.py', description=__doc__.splitlines()[0])
    p.add_argument('--weights', required=True, help='a QAT (--quantized) or PTQ checkpoint')
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
