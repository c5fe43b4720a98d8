"""Per-layer summary (shapes, params, BFLOPs) computed from the cfg alone, no forward pass.

BFLOPs follow darknet's accounting so totals equal what darknet prints: a convolution counts
2 x weights x output pixels, a maxpool size^2 x output elements, a shortcut one add per output
element and input layer (doubled when weighted); every other layer counts zero.
"""
from __future__ import annotations

from models.layers import Route, ScaleChannels, SegmentHead, Shortcut


def _check(model, i, shape, in_shapes, at_cfg_size):
    """Spatial agreement of multi-input layers, reported at the block's cfg line."""
    m, block = model.module_list[i], model.blocks[i + 1]
    if isinstance(m, Route) and len({s[1:] for s in in_shapes}) > 1:
        sizes = ', '.join(f'layer {j}: {s[1]}x{s[2]}' for j, s in zip(m.froms, in_shapes))
        raise block.error(f'route joins maps of different sizes ({sizes})', 'layers')
    if isinstance(m, Shortcut) and any(s[1:] != shape[1:] for s in in_shapes):
        raise block.error(f'shortcut adds maps of different sizes {[shape] + in_shapes}', 'from')
    if isinstance(m, ScaleChannels):
        _check_scale(m, block, shape, in_shapes[0])
    if isinstance(m, SegmentHead) and at_cfg_size:  # lightNet writes H*W of the cfg's size
        for key in ('groups', 'stride'):
            if block.get(key) != shape[1] * shape[2]:
                raise block.error(f'{key}={block.get(key)}, but a per-pixel [{block.type}] needs '
                                  f'H*W of its input, {shape[1]}x{shape[2]} = '
                                  f'{shape[1] * shape[2]}', key)


def _check_scale(m, block, shape, src):
    if block.type == 'sam' and shape != src:
        raise block.error(f'sam multiplies maps of equal shape, got {shape} and {src}', 'from')
    if block.type == 'scale_channels' and not m.scale_wh and shape[1:] != (1, 1):
        raise block.error(f'scale_channels expects a (c, 1, 1) input, got {shape}')
    if m.scale_wh and shape[1:] != src[1:]:
        raise block.error(f'scale_wh=1 needs the previous map ({shape}) the size of layer '
                          f'{m.froms[0]} ({src})', 'from')


def layer_shapes(model, img_size):
    """Input and output (c, h, w) of every layer for an input of img_size (int or (h, w))."""
    h, w = (img_size, img_size) if isinstance(img_size, int) else img_size
    outs, ins = [], []
    shape = (model.in_channels, h, w)
    at_cfg_size = (h, w) == tuple(model.img_size)
    for i, m in enumerate(model.module_list):
        in_shapes = [outs[j] for j in m.froms]
        _check(model, i, shape, in_shapes, at_cfg_size)
        ins.append(shape)
        shape = tuple(m.out_shape(shape, in_shapes))
        if min(shape) < 1:
            raise model.blocks[i + 1].error(f'output shape {shape} is empty at input size {h}x{w}')
        outs.append(shape)
    return ins, outs


def summarize(model, img_size) -> dict:
    ins, outs = layer_shapes(model, img_size)
    layers = []
    for i, (m, block) in enumerate(zip(model.module_list, model.blocks[1:])):
        in_shapes = [outs[j] for j in m.froms]
        layers.append({
            'index': i, 'type': block.type, 'filters': outs[i][0],
            'input': list(ins[i]), 'output': list(outs[i]),
            'params': sum(p.numel() for p in m.parameters()),
            'bflops': m.bflops(ins[i], outs[i], in_shapes)})
    return {'params': sum(p.numel() for p in model.parameters()),
            'bflops': sum(layer['bflops'] for layer in layers), 'layers': layers}
