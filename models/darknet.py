"""Darknet: a PyTorch model built from darknet cfg blocks by one loop over a builder registry.

Layer i of the network is block i + 1 of the cfg ([net] is block 0), exactly darknet's numbering,
so ``layers=-1, 61`` and ``from=-3`` mean what they mean in darknet.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from models.cfg import Block, CfgError, load_blocks, write_cfg
from models.layers import (Activation, ConvBNAct, Dropout, GlobalAvgPool, MaxPool, Route,
                           ScaleChannels, SegmentHead, Shortcut, Upsample, YoloLayer,
                           class_map, decode_parts, resize_logits, xywh)
from models.summary import layer_shapes, summarize


class BuildContext:
    """What a builder may know: the output channels of every layer built so far."""

    def __init__(self, in_channels):
        self.in_channels = in_channels
        self.channels = []  # output channels per built layer

    @property
    def index(self):
        return len(self.channels)

    @property
    def prev_channels(self):
        return self.channels[-1] if self.channels else self.in_channels

    def resolve(self, block: Block, key: str, ref: int) -> int:
        """A darknet layer reference (negative = relative) as an absolute index, or a CfgError."""
        idx = self.index + ref if ref < 0 else ref
        if not 0 <= idx < self.index:
            raise block.error(f"{key}={ref} refers to layer {idx}, but layer {self.index} can only "
                              f"use layers 0..{self.index - 1}", key)
        return idx


def _positive(block, *keys):
    for key in keys:
        if block.get(key) < 1:
            raise block.error(f"'{key}' must be >= 1, got {block.get(key)}", key)


def build_convolutional(b: Block, ctx: BuildContext):
    _positive(b, 'filters', 'size', 'stride', 'groups', 'dilation')
    c1, c2, k, g, d = (ctx.prev_channels, b.get('filters'), b.get('size'), b.get('groups'),
                       b.get('dilation'))
    if c1 % g or c2 % g:
        raise b.error(f'groups={g} must divide input channels {c1} and filters {c2}', 'groups')
    padding = d * (k // 2) if b.get('pad') else b.get('padding')
    module = ConvBNAct.build(c1, c2, k, b.get('stride'), padding, g, d,
                             bn=bool(b.get('batch_normalize')), act=b.get('activation'))
    return module, c2


def build_maxpool(b: Block, ctx: BuildContext):
    _positive(b, 'size', 'stride')
    size = b.get('size')
    return MaxPool(size, b.get('stride'), b.get('padding', size - 1)), ctx.prev_channels


def build_avgpool(b: Block, ctx: BuildContext):
    return GlobalAvgPool(), ctx.prev_channels


def build_upsample(b: Block, ctx: BuildContext):
    _positive(b, 'stride')
    return Upsample(b.get('stride'), b.get('scale')), ctx.prev_channels


def build_dropout(b: Block, ctx: BuildContext):
    p = b.get('probability')
    if not 0 <= p < 1:
        raise b.error(f'probability must be in [0, 1), got {p}', 'probability')
    return Dropout(p), ctx.prev_channels


def build_route(b: Block, ctx: BuildContext):
    refs = [ctx.resolve(b, 'layers', r) for r in b.get('layers')]
    groups, group_id = b.get('groups'), b.get('group_id')
    if groups < 1 or not 0 <= group_id < groups:
        raise b.error(f'need groups >= 1 and 0 <= group_id < groups, got {groups}, {group_id}')
    for r in refs:
        if ctx.channels[r] % groups:
            raise b.error(f'layer {r} has {ctx.channels[r]} channels, not divisible by '
                          f'groups={groups}', 'groups')
    return Route(refs, groups, group_id), sum(ctx.channels[r] // groups for r in refs)


def build_shortcut(b: Block, ctx: BuildContext):
    refs = [ctx.resolve(b, 'from', r) for r in b.get('from')]
    c = ctx.prev_channels  # inputs with other channel counts add over the shared ones
    wt, wn = b.get('weights_type'), b.get('weights_normalization')
    if wt not in ('none', 'per_feature', 'per_channel'):
        raise b.error(f"weights_type must be none, per_feature or per_channel, got '{wt}'",
                      'weights_type')
    if wn not in ('none', 'relu', 'softmax'):
        raise b.error(f"weights_normalization must be none, relu or softmax, got '{wn}'",
                      'weights_normalization')
    return Shortcut(refs, c, b.get('activation'), wt, wn), c


def build_scale_channels(b: Block, ctx: BuildContext):
    src = ctx.resolve(b, 'from', b.get('from'))
    if b.get('scale_wh'):
        if ctx.prev_channels != 1:
            raise b.error(f'scale_wh=1 scales layer {src} per position by a one-channel map; the '
                          f'previous layer has {ctx.prev_channels} channels', 'scale_wh')
    elif ctx.channels[src] != ctx.prev_channels:
        raise b.error(f'scales layer {src} ({ctx.channels[src]} channels) by the previous layer '
                      f'({ctx.prev_channels} channels); they must match', 'from')
    return ScaleChannels(src, b.get('activation'), b.get('scale_wh')), ctx.channels[src]


def build_sam(b: Block, ctx: BuildContext):
    src = ctx.resolve(b, 'from', b.get('from'))
    if ctx.channels[src] != ctx.prev_channels:
        raise b.error(f'multiplies layer {src} ({ctx.channels[src]} channels) by the previous '
                      f'layer ({ctx.prev_channels} channels); they must match', 'from')
    return ScaleChannels(src, b.get('activation')), ctx.prev_channels


def build_activation(b: Block, ctx: BuildContext):
    return Activation(b.get('activation')), ctx.prev_channels


def build_empty(b: Block, ctx: BuildContext):
    return Activation('linear'), ctx.prev_channels


def build_segment(b: Block, ctx: BuildContext):
    """[softmax] / [logistic] as lightNet's segmentation head; groups = stride = H*W of the
    input is checked with the shapes (models/summary.py)."""
    c = ctx.prev_channels
    for key in ('classes', 'num'):
        if key in b.options and b.get(key) != c:
            raise b.error(f'{key}={b.get(key)} but the layer before has {c} channels (one per '
                          f'class)', key)
    temperature = b.get('temperature') if b.type == 'softmax' else 1.0
    if temperature <= 0:
        raise b.error(f'temperature must be > 0, got {temperature}', 'temperature')
    return SegmentHead(c, b.type, temperature), c


def build_yolo(b: Block, ctx: BuildContext):
    anchors, num, classes = b.get('anchors'), b.get('num'), b.get('classes')
    if len(anchors) != 2 * num:
        raise b.error(f'num={num} needs {2 * num} anchor values, got {len(anchors)}', 'anchors')
    mask = b.get('mask', list(range(num)))
    if not mask or any(not 0 <= m < num for m in mask):
        raise b.error(f'mask {mask} must index anchors 0..{num - 1}', 'mask')
    if classes < 1:
        raise b.error(f'classes must be >= 1, got {classes}', 'classes')
    need = len(mask) * (classes + 5)
    if ctx.prev_channels != need:
        raise b.error(f'the layer before needs filters={need} ({len(mask)} anchors x '
                      f'(5 + {classes} classes)), it has {ctx.prev_channels}')
    pairs = [anchors[2 * m: 2 * m + 2] for m in mask]
    return YoloLayer(pairs, classes, b.get('scale_x_y'), b.get('new_coords')), ctx.prev_channels


BUILDERS = {
    'convolutional': build_convolutional, 'maxpool': build_maxpool, 'avgpool': build_avgpool,
    'upsample': build_upsample, 'dropout': build_dropout, 'route': build_route,
    'shortcut': build_shortcut, 'scale_channels': build_scale_channels, 'sam': build_sam,
    'activation': build_activation, 'empty': build_empty, 'yolo': build_yolo,
    'softmax': build_segment, 'logistic': build_segment,
}


def build_modules(blocks: list[Block]):
    ctx = BuildContext(blocks[0].get('channels'))
    modules = nn.ModuleList()
    for b in blocks[1:]:
        if b.type not in BUILDERS:
            raise b.error(f'a darknet block this toolkit does not build (it builds '
                          f"{', '.join(sorted(BUILDERS))})")
        module, channels = BUILDERS[b.type](b, ctx)
        modules.append(module)
        ctx.channels.append(channels)
    return modules, ctx.channels


def is_quantized(model) -> bool:
    """Whether the model was quantized (quantize_model, or a QAT/PTQ checkpoint): it then carries
    the config it was quantized with."""
    return bool(getattr(model, 'quant_config', None))


class Darknet(nn.Module):
    """A network of detection heads ([yolo]), a segmentation head ([softmax] / [logistic], as
    lightNet writes it), or both on one backbone (multi-task).

    Training forward: the raw outputs of every head, in layer order: (b, anchors, h, w,
    5 + classes) per [yolo], (b, classes, h, w) logits for the segmentation head. Eval forward:
    (decoded detections (b, n, 5 + classes) with xywh in input pixels, objectness and class
    probabilities, or None without [yolo]; the raw heads). ``det_heads`` and ``seg_logits`` pick
    the two kinds out of the heads; ``segment`` turns the logits into class probabilities."""

    def __init__(self, cfg):
        super().__init__()
        self.blocks = load_blocks(cfg)
        net = self.blocks[0]
        self.in_channels = net.get('channels')
        self.img_size = (net.get('height'), net.get('width'))
        # how darknet resizes images for this cfg (a training key of [net]; 0 when absent)
        self.letter_box = net.options.get('letter_box', '0').strip() not in ('0', '')
        self.module_list, self.channels = build_modules(self.blocks)
        kinds = [(i, m) for i, m in enumerate(self.module_list)
                 if isinstance(m, (YoloLayer, SegmentHead))]
        self.head_layers = [i for i, _ in kinds]
        self.yolo_layers = [i for i, m in kinds if isinstance(m, YoloLayer)]
        self.seg_layers = [i for i, m in kinds if isinstance(m, SegmentHead)]
        if not kinds:
            raise CfgError(f'{net.source}: the cfg has no [yolo] layer to detect with and no '
                           f'[softmax] / [logistic] layer to segment with')
        if len(self.seg_layers) > 1:
            raise self.blocks[self.seg_layers[1] + 1].error('one segmentation head per network')
        self.det_positions = [k for k, (i, _) in enumerate(kinds) if i in self.yolo_layers]
        self.saved = {j for m in self.module_list for j in m.froms}
        self.nc = self.module_list[self.yolo_layers[0]].nc if self.yolo_layers else 0
        self.seg_nc = self.module_list[self.seg_layers[0]].nc if self.seg_layers else 0
        layer_shapes(self, self.img_size)  # shape errors surface now, with their cfg line

    @property
    def cfg_text(self) -> str:
        return write_cfg(self.blocks)

    def forward(self, x):
        heads = self.heads(x)
        if self.training:
            return heads
        # decoded in fp32 under autocast too: bf16 would round box coordinates to 1-2 pixels
        heads = [h if h.dtype == torch.float32 else h.float() for h in heads]
        return (self.decode(heads, x.shape[-2:]) if self.yolo_layers else None), heads

    def det_heads(self, heads):
        """The [yolo] outputs of ``heads`` (all heads, or already only those)."""
        if len(heads) == len(self.yolo_layers):
            return list(heads)
        return [heads[k] for k in self.det_positions]

    def seg_logits(self, heads):
        """The segmentation head's logits (b, classes, h, w), or None."""
        if not self.seg_layers:
            return None
        return heads[self.head_layers.index(self.seg_layers[0])]

    def segment(self, heads, size=None):
        """Class probabilities (b, classes, h, w) of the segmentation head, resized (bilinear,
        on the logits) to ``size`` (h, w) when given."""
        logits = resize_logits(self.seg_logits(heads), size)
        return self.module_list[self.seg_layers[0]].probabilities(logits)

    def segment_classes(self, heads, size=None):
        """The class of every pixel (b, h, w) at ``size``: what evaluation and drawing need."""
        return class_map(self.seg_logits(heads), size)

    @property
    def mixed_coords(self):
        """Whether some [yolo] layers set new_coords and others not: each decodes its own way."""
        return len({self.module_list[j].new_coords for j in self.yolo_layers}) > 1

    def decode(self, heads, img_hw):
        """(b, n, 5 + classes): xywh in input pixels, objectness, class probabilities."""
        return xywh(self.decode_parts(heads, img_hw))

    def decode_parts(self, heads, img_hw):
        """models.layers.decode_parts over every [yolo] head at once; with mixed new_coords over
        each head alone, the parts concatenated."""
        heads = self.det_heads(heads)
        layers = [self.module_list[j] for j in self.yolo_layers]
        if not self.mixed_coords:
            return decode_parts(layers, heads, img_hw)
        each = [decode_parts([m], [p], img_hw) for m, p in zip(layers, heads)]
        return tuple(torch.cat(part, -2) for part in zip(*each))  # the rows axis of every part

    def heads(self, x):
        """The raw outputs of the head layers, in layer order."""
        saved, heads = {}, []
        for i, m in enumerate(self.module_list):
            if isinstance(m, (YoloLayer, SegmentHead)):
                heads.append(m(x))  # darknet passes a head's input on unchanged
            elif m.froms:
                x = m(x, [saved[j] for j in m.froms])
            else:
                x = m(x)
            if i in self.saved:
                saved[i] = x
        return heads

    def fuse(self):
        for m in self.module_list:
            if isinstance(m, ConvBNAct):
                m.fuse()
        return self

    def info(self, img_size=None):
        return summarize(self, img_size or self.img_size)
