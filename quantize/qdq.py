"""The deployable int8 form of a quantized model: what export writes as ONNX Q/DQ nodes.

``qdq_model(model)`` returns a copy of a QAT/PTQ model (modes 1 and 3, 8 bits) in which

- every quantized conv holds its integer weights (per output channel, symmetric, BN folded in:
  scaling channel c by k_c maps the integers q to sign(k_c) q and the scale s_c to |k_c| s_c, so
  the fold is exact) and a float bias;
- activations go through ``torch.fake_quantize_per_tensor_affine`` with the model's own scales,
  which torch.onnx writes as QuantizeLinear/DequantizeLinear pairs;
- for onnxruntime only, the output of a conv followed by leaky/relu is also quantized *before* the
  activation (see preact_qparams): onnxruntime fuses DQ -> Conv -> Q into one integer QLinearConv
  only when nothing sits between the conv and its Q node (TensorRT fuses conv + activation + Q
  by itself). This is the one place such a graph rounds where the fake-quant model does not;
- the outputs of routes, upsample and maxpool are re-quantized with their inputs' shared scale (a
  no-op on values already on that grid), so the convs reading them get DQ inputs as well.

``int8_initializers(graph)`` then stores each constant QuantizeLinear's result as an int8 tensor:
the file holds the integer weights, not float weights and a rounding rule.
"""
from __future__ import annotations

import copy
import platform
from pathlib import Path

import numpy as np
import torch
from torch import nn

from models.layers import Route, Upsample
from quantize.config import QuantMode
from quantize.modules import ActQuant, QuantConvBNAct, QuantShortcut
from models.darknet import is_quantized
from quantize.qat import PASS_THROUGH
from quantize.quantizers import affine_params
from utils.errors import ToolkitError


class QDQError(ToolkitError, ValueError):
    """A model that has no int8 Q/DQ form (the message says why)."""


def act_qparams(q: ActQuant):
    """(scale, zero point, qmin, qmax) as Python numbers: constants in the exported graph."""
    scale, zp, qmin, qmax = q.params()
    return float(scale), int(zp), int(qmin), int(qmax)


def preact_qparams(q: ActQuant, act):
    """Q params for a conv output that ``act`` (leaky/relu) maps into q's range.

    Symmetric (mode 3): q's own scale. Positive values come out exactly as before; a negative
    value is rounded once more after the slope (at most one step, rarely) and clamps only below
    -amax, which symmetric ranges (amax covers both signs) make rare. Affine (mode 1): the range
    [min / slope, max], since an affine range fitted to leaky's small negative side would clamp
    the pre-activations that produced it.
    """
    if q.config.symmetric_activations:
        return act_qparams(q)
    lo, hi = q.observer.lo.item(), q.observer.hi.item()
    if isinstance(act, nn.LeakyReLU) and lo < 0:
        lo = lo / act.negative_slope
    scale, zp = affine_params(torch.tensor(lo), torch.tensor(hi), 8, q.config.fpga)
    return float(scale), int(zp), 0, 255


def fake_q(x, p):
    scale, zp, qmin, qmax = p
    return torch.fake_quantize_per_tensor_affine(x, scale, zp, qmin, qmax)


class QDQConv(nn.Module):
    froms: list = []

    def __init__(self, m: QuantConvBNAct, pre_activation=False, uint8_weights=False,
                 weight_bits=None):
        super().__init__()
        # the symmetric integers -127..127 as they are (int8), or shifted by 128 (uint8)
        self.w_zero, self.w_range = (128, (0, 255)) if uint8_weights else (0, (-128, 127))
        q, scale, bias = m.integer_weights(weight_bits)
        c = m.conv
        self.conv = nn.Conv2d(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding,
                              c.dilation, c.groups, bias=True).to(q.device)
        self.conv.weight.data = (q * scale.view(-1, 1, 1, 1)).float()
        self.conv.bias.data = bias.float()
        self.register_buffer('w_scale', scale.float())
        self.act = m.act
        self.in_q = act_qparams(m.in_quant) if m.in_quant is not None else None
        # a float output (a head's conv): no Q after it, the engine's conv writes float
        self.out_q = act_qparams(m.out_quant) if m.out_quant is not None else None
        self.pre_q = (preact_qparams(m.out_quant, m.act) if pre_activation and self.out_q and
                      isinstance(m.act, (nn.ReLU, nn.LeakyReLU)) else None)

    def forward(self, x):
        if self.in_q is not None:
            x = fake_q(x, self.in_q)
        zero = torch.full_like(self.w_scale, self.w_zero, dtype=torch.int32)
        w = torch.fake_quantize_per_channel_affine(self.conv.weight, self.w_scale, zero, 0,
                                                   *self.w_range)
        y = nn.functional.conv2d(x, w, self.conv.bias, self.conv.stride, self.conv.padding,
                                 self.conv.dilation, self.conv.groups)
        if self.pre_q is not None:
            y = fake_q(y, self.pre_q)
        y = self.act(y)
        return y if self.out_q is None else fake_q(y, self.out_q)


class QDQAfter(nn.Module):
    """A layer whose output is quantized again (a shortcut's sum, or a copy that keeps the grid)."""

    def __init__(self, layer, qparams):
        super().__init__()
        self.layer, self.froms, self.q = layer, list(getattr(layer, 'froms', [])), qparams

    def forward(self, x, inputs=None):
        y = self.layer(x, inputs) if self.froms else self.layer(x)
        return fake_q(y, self.q)


def output_quantizers(model):
    """Per layer: the ActQuant whose grid the layer's output lies on, or None."""
    out = []
    for i, m in enumerate(model.module_list):
        if isinstance(m, (QuantConvBNAct, QuantShortcut)):
            out.append(m.out_quant)
        elif isinstance(m, PASS_THROUGH) and not (isinstance(m, Upsample) and m.scale != 1.0):
            out.append(out[i - 1])
        elif isinstance(m, Route):
            qs = {id(out[j]): out[j] for j in m.froms}
            out.append(next(iter(qs.values())) if len(qs) == 1 else None)
        else:
            out.append(None)
    return out


def check_quantized(model):
    if not is_quantized(model):
        raise QDQError('the model is not quantized: train with --quantized, or run '
                       'quantize/ptq.py, or export with --int8 to calibrate it now')
    cfg = model.quant_config
    if cfg['mode'] == QuantMode.DOREFA:
        raise QDQError('--quantized 2 (DoReFa) has no int8 Q/DQ form (its weights are not '
                       'per-channel affine); use quantize/export_int.py for fixed-point targets')
    if cfg['w_bits'] != 8 or cfg['a_bits'] != 8:
        raise QDQError(f"ONNX Q/DQ holds 8-bit tensors; this model has {cfg['w_bits']}-bit "
                       f"weights and {cfg['a_bits']}-bit activations")
    blind = [i for i, m in enumerate(model.module_list)
             if any(q.observer.seen == 0 for q in m.modules() if isinstance(q, ActQuant))]
    if blind:
        raise QDQError(f'layer {blind[0]} (and {len(blind) - 1} more) has an activation range '
                       'that never saw data: calibrate it (quantize/ptq.py, or export --int8) '
                       'or train it with --quantized')


def as_uint8(p):
    """Symmetric int8 params as uint8 with zero point 128: the same values, shifted integers."""
    if p is None or p[2] != -128:
        return p
    scale, zp, _, _ = p
    return scale, zp + 128, 0, 255


TARGETS = ('tensorrt', 'openvino', 'uint8', 'onnxruntime', 'onnxruntime-u8')
UINT8_ACTIVATIONS = ('uint8', 'onnxruntime', 'onnxruntime-u8')
# x86 without VNNI multiplies uint8 by int8 with vpmaddubsw, which saturates a sum of two
# products at 16 bits: 7-bit weights (within +-63) keep 2 x 255 x 63 < 2^15, so no sum can
SAFE_WEIGHT_BITS = 7
SAFE_WEIGHT_MAX = 2 ** (SAFE_WEIGHT_BITS - 1) - 1


def exact_int8_weights_here() -> bool:
    """Whether onnxruntime's uint8 x int8 kernels are exact on this CPU: False on x86 without
    VNNI (AVX2's vpmaddubsw saturates sums of two products at 16 bits); True elsewhere, and
    when the CPU cannot be inspected."""
    if platform.machine().lower() not in ('x86_64', 'amd64', 'i686', 'x86'):
        return True
    try:
        flags = Path('/proc/cpuinfo').read_text()
    except OSError:
        return True
    return 'avx512_vnni' in flags or 'avx_vnni' in flags


def onnxruntime_target() -> str:
    """The Q/DQ target whose onnxruntime results on this machine are the model's own."""
    return 'onnxruntime' if exact_int8_weights_here() else 'onnxruntime-u8'


def has_form(model, target) -> bool:
    """Whether a quantized model has a Q/DQ graph for target: TensorRT's symmetric graphs take
    no zero points (--quantized 1 has them)."""
    return not (target in ('tensorrt', 'openvino') and
                model.quant_config['mode'] == QuantMode.GOOGLE)


def qdq_model(model, target='tensorrt'):
    """A copy of a quantized model whose forward uses only ops torch.onnx writes as Q/DQ.

    target 'tensorrt': int8 activations with zero point 0 (TensorRT takes no other), Q/DQ only
    where the fake-quant model rounds, so the graph computes what it computes. 'onnxruntime':
    uint8 activations (its x86 kernels fuse QLinearConv/QLinearAdd for uint8 only; mode 3's
    int8 values shifted by 128, the same numbers) and the extra Q before leaky/relu.
    'onnxruntime-u8': the same with uint8 weights (the integers shifted by 128). On x86 CPUs
    without VNNI (AVX2 only) onnxruntime multiplies uint8 activations by int8 weights with an
    instruction that saturates sums of two products at 16 bits, so int8 weights can come out
    wrong there; uint8 x uint8 is exact everywhere, and slower (docs/results/quantization.md).
    'openvino': tensorrt's graph with the float weights quantized to 7 bits per channel (within
    +-63), so that the fast int8 kernels cannot saturate on those CPUs either, at the cost of a
    coarser weight grid than training saw (OpenVINO's int8 path, docs/results/latency.md).
    'uint8': uint8 activations (zero points: mode 1 as it is, mode 3 shifted by 128), int8
    weights, Q/DQ only where the fake-quant model rounds: that model exactly, in runtimes that
    take zero points but run symmetric int8 concats on another grid (OpenVINO 2026 on a Xeon
    with VNNI, docs/results/real.md) or where the onnxruntime graphs' extra rounding costs."""
    if target not in TARGETS:
        raise QDQError(f"Q/DQ target must be one of {', '.join(TARGETS)}, got '{target}'")
    check_quantized(model)
    if not has_form(model, target):
        raise QDQError(f'--quantized 1 has zero points, which --qdq {target} does not take: '
                       'export it for onnxruntime (--qdq onnxruntime) or train with --quantized 3')
    ort, uint8 = target.startswith('onnxruntime'), target in UINT8_ACTIVATIONS
    model = copy.deepcopy(model).eval()
    quantizers = output_quantizers(model)
    ml = model.module_list
    for i, m in enumerate(ml):
        if isinstance(m, QuantConvBNAct):
            ml[i] = QDQConv(m, pre_activation=ort, uint8_weights=target == 'onnxruntime-u8',
                            weight_bits=min(m.w_bits, SAFE_WEIGHT_BITS)
                            if target == 'openvino' else None)
        elif isinstance(m, QuantShortcut):
            ml[i] = QDQAfter(m.shortcut, act_qparams(m.out_quant))
        elif isinstance(m, (Route, *PASS_THROUGH)) and quantizers[i] is not None:
            ml[i] = QDQAfter(m, act_qparams(quantizers[i]))
    if uint8:
        for m in ml:
            for name in ('in_q', 'pre_q', 'out_q', 'q'):
                if hasattr(m, name):
                    setattr(m, name, as_uint8(getattr(m, name)))
    return model


def int8_initializers(graph):
    """Replace QuantizeLinear of a constant by its integer result (an initializer)."""
    from onnx import numpy_helper

    g = graph.graph
    consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    for n in g.node:
        if n.op_type == 'Constant':
            consts[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    keep = []
    for n in g.node:
        if n.op_type == 'QuantizeLinear' and all(x in consts for x in n.input):
            x, scale, zp = (consts[k] for k in n.input)
            axis = next((a.i for a in n.attribute if a.name == 'axis'), 1)
            shape = [1] * x.ndim
            if scale.ndim:
                shape[axis] = -1
            info = np.iinfo(zp.dtype)
            q = np.clip(np.rint(x / scale.reshape(shape)) + zp.reshape(shape).astype(np.int64),
                        info.min, info.max).astype(zp.dtype)
            g.initializer.append(numpy_helper.from_array(q, n.output[0]))
        else:
            keep.append(n)
    del g.node[:]
    g.node.extend(keep)
    used = {x for n in g.node for x in n.input}
    dead = [t for t in g.initializer if t.name not in used]
    for t in dead:
        g.initializer.remove(t)
    return graph


def dequantized_model(model):
    """A float copy whose weights are the quantized ones (dequantized): what a float format such
    as darknet's .weights can hold of a quantized model. Activations are no longer quantized."""

    model = copy.deepcopy(model).eval()
    ml = model.module_list
    for i, m in enumerate(ml):
        if isinstance(m, QuantShortcut):
            ml[i] = m.shortcut
        elif isinstance(m, QuantConvBNAct):
            f = m.to_float()
            with torch.no_grad():
                if m.fold:
                    w, b = m.folded_weight_bias()
                    bn = f.bn  # identity BN carrying the folded bias; darknet's eps is 1e-5
                    bn.weight.fill_(1), bn.running_mean.zero_(), bn.bias.copy_(b)
                    bn.running_var.fill_(1 - bn.eps)
                    f.conv.weight.copy_(m.quant_weight(w))
                else:
                    f.conv.weight.copy_(m.quant_weight(m.conv.weight))
            ml[i] = f
    model.quant_config = None
    return model
