"""quantize_model: swap a Darknet's conv blocks and residual sums for quantized ones, in place.

Which layers: every ConvBNAct (depthwise ones included) that ``filter_fn(index, module)`` accepts
(all by default), and every Shortcut. A cfg that writes ``precision=`` on any conv (lightNet's
per-layer precision) chooses instead: int8 and int4 convs are quantized (int4: 4-bit weights,
8-bit activations), fp32 and fp16 ones, and convs without the key, stay float; an int8 conv
whose input is not on a quantized grid (it follows a float layer) quantizes its input itself.
Mode 2 keeps the first conv and the convs feeding the yolo layers at 8 bits unless
``config.dorefa_all``. With mode 3 or ``config.fpga`` the tensors joined by a route (concat) or a
shortcut share one activation quantizer, as TensorRT and fixed-point pipelines need: then joining
is a copy or an integer add, not a requantization.
"""
from __future__ import annotations

from models.layers import ConvBNAct, Dropout, MaxPool, Route, Shortcut, Upsample
from quantize.config import QuantConfig, QuantMode
from quantize.modules import ActQuant, QuantConvBNAct, QuantShortcut

PASS_THROUGH = (Upsample, MaxPool, Dropout)  # keep their input's integer values and scale
INTEGER = ('int8', 'int4')  # the cfg precisions that are quantized


def cfg_precisions(model) -> dict:
    """{conv layer: precision} written in the cfg (empty when no conv says)."""
    return {i: model.blocks[i + 1].get('precision') for i, m in enumerate(model.module_list)
            if isinstance(m, ConvBNAct) and 'precision' in model.blocks[i + 1].options}


def quantize_model(model, config: QuantConfig, filter_fn=None):
    ml = model.module_list
    written = cfg_precisions(model) if filter_fn is None else {}
    if written:
        filter_fn = lambda i, m: written.get(i) in INTEGER  # noqa: E731
    convs = [i for i, m in enumerate(ml) if isinstance(m, ConvBNAct)
             and (filter_fn is None or filter_fn(i, m))]
    eight_bit = {convs[0]} | {j - 1 for j in model.yolo_layers} if convs else set()
    float_out = head_convs(model) if config.float_heads else set()
    for i in convs:
        keep8 = config.mode == QuantMode.DOREFA and not config.dorefa_all and i in eight_bit
        bits = (8, 8) if keep8 else (config.w_bits, config.a_bits)
        if written.get(i) == 'int4':
            bits = (4, 8)
        ml[i] = QuantConvBNAct.from_float(ml[i], config, *bits, quantize_input=i == convs[0] or (
            bool(written) and not on_grid(model, i - 1)), quantize_output=i not in float_out)
    for i, m in enumerate(ml):
        if isinstance(m, Shortcut):
            ml[i] = QuantShortcut(m, config, config.a_bits)
    if config.mode == QuantMode.TENSORRT or config.fpga:
        share_joined_scales(model, config.share_copies)
    model.quant_config = config.to_dict()
    return model


def head_convs(model) -> set:
    """The convs whose output only a head ([yolo], segmentation) reads."""
    ml = model.module_list
    read = {j for m in ml for j in m.froms}
    return {j - 1 for j in model.head_layers
            if j > 0 and isinstance(ml[j - 1], ConvBNAct) and j - 1 not in read}


def on_grid(model, j) -> bool:
    """Whether layer j's output is a quantized layer's (through pass-throughs and routes)."""
    if j < 0:
        return False
    m = model.module_list[j]
    if isinstance(m, QuantConvBNAct):
        return m.out_quant is not None
    if isinstance(m, (QuantShortcut, Shortcut)):  # every shortcut is quantized
        return True
    if isinstance(m, PASS_THROUGH):
        return on_grid(model, j - 1)
    if isinstance(m, Route):
        return all(on_grid(model, f) for f in m.froms)
    return False


def _producer(model, j, through_routes=False):
    """The quantizer whose output layer j passes on unchanged, or None; through_routes: also
    through a route of one layer (a copy or a channel slice keeps its scale)."""
    m = model.module_list[j]
    while isinstance(m, PASS_THROUGH) or (through_routes and isinstance(m, Route) and
                                          len(m.froms) == 1):
        j = m.froms[0] if isinstance(m, Route) else j - 1
        m = model.module_list[j]
    return m if isinstance(m, (QuantConvBNAct, QuantShortcut)) else None


def share_joined_scales(model, through_routes=False):
    """Give the inputs of every concat and residual sum one ActQuant (union of the groups)."""
    owner = {}  # producer module -> group id
    groups = []
    for i, m in enumerate(model.module_list):
        joined = list(m.froms) + ([i - 1] if isinstance(m, QuantShortcut) else [])
        if not isinstance(m, (Route, QuantShortcut)) or len(joined) < 2:
            continue
        producers = [p for p in (_producer(model, j, through_routes) for j in joined)
                     if p is not None]
        ids = {owner[p] for p in producers if p in owner}
        merged = set(producers).union(*(groups[k] for k in ids))
        groups.append(merged)
        for k in ids:
            groups[k] = set()
        for p in merged:
            owner[p] = len(groups) - 1
    for group in groups:
        if len(group) > 1:
            shared = next(iter(sorted(group, key=_order(model)))).out_quant
            for p in group:
                p.out_quant = shared


def _order(model):
    index = {id(m): i for i, m in enumerate(model.module_list)}
    return lambda m: index[id(m)]


def quant_modules(model):
    return [m for m in model.modules() if isinstance(m, (QuantConvBNAct, ActQuant))]


def set_quant_enabled(model, enabled: bool):
    for m in quant_modules(model):
        m.enabled = enabled


def freeze(model, observers=True, bn=True):
    """Stop range updates (observers) and batch statistics (BN, folded or not) from now on."""
    for m in model.modules():
        if observers and isinstance(m, ActQuant):
            m.observer.enabled = False
        if bn and isinstance(m, QuantConvBNAct):
            m.bn_frozen = True
