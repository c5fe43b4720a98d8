"""One module per darknet block type.

Every module knows its output shape for given input shapes (``out_shape``) and darknet's own BFLOPs
figure for it (``bflops``), so the summary needs no forward pass. Modules that read earlier layers
(route, shortcut, scale_channels) list them, as absolute indices, in ``froms``; the network hands
their outputs over as a list in the same order.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.activations import make_activation


def fold_conv_bn(conv, bn):
    """Return (weight, bias) of a conv that equals conv -> bn (bn in eval mode).

    bn(y) = gamma * (y - mean) / sqrt(var + eps) + beta, so each output channel's kernel scales by
    gamma / sqrt(var + eps) and the bias becomes beta + (b - mean) * that scale. Differentiable
    in the conv and BN parameters: QAT with --BN_Fold trains through it.
    """
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    return conv.weight * scale.view(-1, 1, 1, 1), bn.bias + (bias - bn.running_mean) * scale


def is_depthwise(conv: nn.Conv2d) -> bool:
    """One filter per input channel: its output channels are its input channels."""
    return conv.groups > 1 and conv.groups == conv.in_channels == conv.out_channels


class ConvBNAct(nn.Module):
    """A darknet [convolutional]: conv, BN (or Identity when the conv has a bias), activation."""
    froms: list = []

    def __init__(self, conv: nn.Conv2d, bn: nn.Module, act: nn.Module):
        super().__init__()
        self.conv, self.bn, self.act = conv, bn, act

    @classmethod
    def build(cls, c1, c2, k=1, s=1, p=0, g=1, d=1, bn=True, act='leaky'):
        conv = nn.Conv2d(c1, c2, k, s, p, dilation=d, groups=g, bias=not bn)
        norm = nn.BatchNorm2d(c2, momentum=0.03, eps=1e-5) if bn else nn.Identity()
        return cls(conv, norm, make_activation(act))

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))

    def fuse(self):
        """Fold BN into the conv: same outputs in eval mode, one op fewer."""
        if isinstance(self.bn, nn.BatchNorm2d):
            with torch.no_grad():
                w, b = fold_conv_bn(self.conv, self.bn)
            conv = self.conv
            fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                              conv.padding, conv.dilation, conv.groups, bias=True)
            fused.weight.data.copy_(w)
            fused.bias.data.copy_(b)
            self.conv, self.bn = fused.to(w.device), nn.Identity()

    def out_shape(self, shape, _=()):
        c, h, w = shape
        conv = self.conv
        k, s, p, d = conv.kernel_size[0], conv.stride[0], conv.padding[0], conv.dilation[0]
        size = lambda n: (n + 2 * p - d * (k - 1) - 1) // s + 1  # noqa: E731
        return conv.out_channels, size(h), size(w)

    def bflops(self, shape, out, _=()):
        return 2.0 * self.conv.weight.numel() * out[1] * out[2] / 1e9


class MaxPool(nn.Module):
    """darknet maxpool: total padding ``size-1`` by default, split ``pad//2`` left/top, rest
    right/bottom, and the max taken over real pixels only (hence -inf padding). This gives the
    same-size output of yolov3-tiny's size=2 stride=1 pool."""
    froms: list = []

    def __init__(self, size, stride, padding):
        super().__init__()
        self.size, self.stride, self.padding = size, stride, padding
        self.pad = (padding // 2, padding - padding // 2) * 2  # left, right, top, bottom

    def forward(self, x):
        pad = self.pad if torch.jit.is_tracing() else self._reached(*x.shape[2:])
        before, after = pad[0], pad[1]
        if pad[:2] == pad[2:] and before == after and before <= self.size // 2:
            return F.max_pool2d(x, self.size, self.stride, before)
        if max(pad) < self.size:  # every window holds a real pixel: repeating the edge gives
            # the same maxima, and keeps infinities out of exported graphs (calibrators that
            # histogram every tensor, onnxruntime's among them, fail on them)
            x = F.pad(x, pad, mode='replicate')
        elif any(pad):
            x = F.pad(x, pad, value=float('-inf'))
        return F.max_pool2d(x, self.size, self.stride)

    def _reached(self, h, w):
        """The padding some window reaches: yolov3-tiny's size-2 stride-2 pools on even sizes
        never reach the trailing row and column, and padding them cost a copy forward and a
        zero-fill backward of the largest activations (docs/results/training-speed.md)."""
        pad = []
        for n, (before, _) in ((w, self.pad[:2]), (h, self.pad[2:])):  # F.pad: last dim first
            out = (n + self.padding - self.size) // self.stride + 1
            pad += [before, max(0, (out - 1) * self.stride - before + self.size - n)]
        return tuple(pad)

    def out_shape(self, shape, _=()):
        c, h, w = shape
        size = lambda n: (n + self.padding - self.size) // self.stride + 1  # noqa: E731
        return c, size(h), size(w)

    def bflops(self, shape, out, _=()):
        return self.size * self.size * out[0] * out[1] * out[2] / 1e9


class GlobalAvgPool(nn.Module):
    froms: list = []

    def forward(self, x):
        return x.mean((2, 3), keepdim=True)

    def out_shape(self, shape, _=()):
        return shape[0], 1, 1

    def bflops(self, *_):
        return 0.0


class Upsample(nn.Module):
    froms: list = []

    def __init__(self, stride, scale=1.0):
        super().__init__()
        self.stride, self.scale = stride, scale

    def forward(self, x):
        x = F.interpolate(x, scale_factor=float(self.stride), mode='nearest')
        return x * self.scale if self.scale != 1.0 else x

    def out_shape(self, shape, _=()):
        return shape[0], shape[1] * self.stride, shape[2] * self.stride

    def bflops(self, *_):
        return 0.0


class Dropout(nn.Dropout):
    froms: list = []

    def out_shape(self, shape, _=()):
        return shape

    def bflops(self, *_):
        return 0.0


class Route(nn.Module):
    """Concatenate earlier outputs; with groups, take slice ``group_id`` of each (CSP blocks)."""

    def __init__(self, froms, groups=1, group_id=0):
        super().__init__()
        self.froms, self.groups, self.group_id = list(froms), groups, group_id

    def forward(self, x, inputs):
        if self.groups > 1:
            inputs = [t.chunk(self.groups, 1)[self.group_id] for t in inputs]
        return inputs[0] if len(inputs) == 1 else torch.cat(inputs, 1)

    def out_shape(self, shape, in_shapes=()):
        return sum(s[0] // self.groups for s in in_shapes), in_shapes[0][1], in_shapes[0][2]

    def bflops(self, *_):
        return 0.0


class Shortcut(nn.Module):
    """Residual sum of the previous layer and ``froms``, optionally weighted (AB darknet's
    weights_type per_feature / per_channel with none / relu / softmax normalization).

    The output has the previous layer's channels. An input with other channels is added over
    the channels the two share, as darknet does (a partial residual, yolov3-tiny-prn and
    enet-coco): it adds the i-th value of each input's (c, h, w) layout wherever i is below that
    input's size, so with equal h and w the first min(c_prev, c_in) channels."""

    def __init__(self, froms, channels, act='linear', weights_type='none', normalization='none'):
        # channels: of the previous layer, the output's; per_channel weights are per those
        super().__init__()
        self.froms, self.normalization = list(froms), normalization
        self.act = make_activation(act)
        n = len(self.froms) + 1
        shape = {'none': None, 'per_feature': (n, 1), 'per_channel': (n, channels)}[weights_type]
        self.weights = nn.Parameter(torch.ones(shape)) if shape else None

    def mixing_weights(self):
        w = self.weights
        if self.normalization == 'relu':
            w = F.relu(w)
            w = w / (w.sum(0, keepdim=True) + 1e-4)
        elif self.normalization == 'softmax':
            w = w.softmax(0)
        return w

    def forward(self, x, inputs):
        w = self.mixing_weights() if self.weights is not None else None
        out = x if w is None else x * w[0].view(1, -1, 1, 1)
        c = x.shape[1]
        for i, t in enumerate(inputs, 1):
            k = min(c, t.shape[1])
            term = t[:, :k] if w is None else t[:, :k] * w[i][:k].view(1, -1, 1, 1)
            out = out + term if k == c else torch.cat((out[:, :k] + term, out[:, k:]), 1)
        return self.act(out)

    def out_shape(self, shape, _=()):
        return shape

    def bflops(self, shape, out, _=()):
        flops = out[0] * out[1] * out[2] * len(self.froms) / 1e9
        return flops * 2 if self.weights is not None else flops


class ScaleChannels(nn.Module):
    """Multiply the feature map of ``froms[0]`` by this input: per channel, (b, c, 1, 1)
    (squeeze-excitation), or with scale_wh per position, (b, 1, h, w) (spatial attention, the
    sSE half of SCSE). [sam] is the element-wise case, equal shapes."""

    def __init__(self, src, act='linear', scale_wh=False):
        super().__init__()
        self.froms, self.scale_wh = [src], bool(scale_wh)
        self.act = make_activation(act)

    def forward(self, x, inputs):
        return self.act(inputs[0] * x)

    def out_shape(self, shape, in_shapes=()):
        return in_shapes[0]

    def bflops(self, *_):
        return 0.0


class Activation(nn.Module):
    """[activation]: an activation function on its own; [empty] / [silence]: identity."""
    froms: list = []

    def __init__(self, act='linear'):
        super().__init__()
        self.act = make_activation(act)

    def forward(self, x):
        return self.act(x)

    def out_shape(self, shape, _=()):
        return shape

    def bflops(self, *_):
        return 0.0


def resize_logits(logits, size=None):
    """(b, classes, h, w) logits resized (bilinear) to ``size`` (h, w) when it differs, in
    channels-last memory: there both the resize and a reduction over the classes run several
    times faster on CPUs than over planes (bench/profile in docs/results/multitask.md)."""
    if size is None or tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(logits.contiguous(memory_format=torch.channels_last), size=tuple(size),
                         mode='bilinear', align_corners=False)


def class_map(logits, size=None):
    """Per-pixel class (b, h, w): the argmax of the resized logits, which is the argmax of the
    probabilities of either head kind (softmax and the logistic are monotonic)."""
    return resize_logits(logits, size).argmax(1)


class SegmentHead(nn.Module):
    """lightNet's segmentation output: [softmax] with groups = stride = H*W of its input, a
    softmax over the ``classes`` channels at every pixel; [logistic], a sigmoid per channel and
    pixel (independent masks, e.g. lane markers). Like YoloLayer it passes its input on raw (the
    logits the loss wants); ``probabilities`` is what darknet's layer outputs."""
    froms: list = []

    def __init__(self, classes, kind='softmax', temperature=1.0):
        super().__init__()
        self.nc, self.kind, self.temperature = classes, kind, temperature

    def forward(self, x):
        return x

    def probabilities(self, logits):
        if self.kind == 'softmax':
            return (logits / self.temperature).softmax(1)
        return logits.sigmoid()

    def out_shape(self, shape, _=()):
        return shape

    def bflops(self, *_):
        return 0.0


class YoloLayer(nn.Module):
    """Reshapes the head conv to (b, anchors, h, w, 5 + classes) and decodes it darknet's way.

    Decoding (AB darknet): xy = (sigmoid(t) * s - (s - 1) / 2 + grid) * stride with s = scale_x_y;
    wh = exp(t) * anchor. With new_coords=1 the conv already applied the logistic, so
    xy = (t * s - (s - 1) / 2 + grid) * stride and wh = 4 t^2 * anchor, obj and classes as given.
    The stride is the input size over this map's size, measured at run time.
    """
    froms: list = []

    def __init__(self, anchors, classes, scale_x_y=1.0, new_coords=0):
        super().__init__()
        self.register_buffer('anchors', torch.tensor(anchors, dtype=torch.float32).view(-1, 2))
        self.na, self.nc, self.no = len(anchors), classes, classes + 5
        self.scale_x_y, self.new_coords = scale_x_y, new_coords

    def forward(self, x):
        b, _, h, w = x.shape
        return x.view(b, self.na, self.no, h, w).permute(0, 1, 3, 4, 2).contiguous()

    def cell_constants(self, h, w, img_hw, like):
        """Per prediction row (anchor, y, x order), each (na*h*w, 2): xy = f(t) * gain + offset
        and wh = g(t) * anchor, so one affine map decodes every head once they are concatenated."""
        kw = {'device': like.device, 'dtype': like.dtype}
        stride = torch.tensor([img_hw[1] / w, img_hw[0] / h], **kw)
        gy, gx = torch.meshgrid(torch.arange(h, **kw), torch.arange(w, **kw), indexing='ij')
        s = self.scale_x_y
        offset = (torch.stack((gx, gy), -1).view(1, h * w, 2) - (s - 1) / 2) * stride
        offset = offset.expand(self.na, -1, -1).reshape(-1, 2)
        anchor = self.anchors.to(like.dtype).view(self.na, 1, 2).expand(-1, h * w, -1)
        return (stride * s).expand_as(offset), offset, anchor.reshape(-1, 2)

    def decode(self, p, img_hw):
        """p: raw (b, na, h, w, no) -> (b, na*h*w, no): xywh in input pixels, obj, class scores."""
        return xywh(decode_parts([self], [p], img_hw))

    def out_shape(self, shape, _=()):
        return shape

    def bflops(self, *_):
        return 0.0


def decode_parts(layers, heads, img_hw):
    """The heads of [yolo] layers that share new_coords decoded at once: concatenated raw, one
    activation, per-row constants (YoloLayer.cell_constants). A handful of kernels or graph nodes
    instead of a dozen per head, which at batch 1 costs about as much in a small network as its
    convolutions do. Returns xy (b, n, 2) in pixels, wh = g * wh_gain, obj (b, n, 1), cls."""
    gain, offset, anchor = (torch.cat(c) for c in zip(*(
        m.cell_constants(p.shape[2], p.shape[3], img_hw, p) for m, p in zip(layers, heads))))
    t = torch.cat([p.reshape(p.shape[0], -1, p.shape[-1]) for p in heads], 1)
    twh = t[..., 2:4]
    if layers[0].new_coords:  # the conv applied the logistic already; wh = 4 t^2 anchor
        a, g, wh_gain = t, twh * twh, 4 * anchor
    else:
        a, g, wh_gain = t.sigmoid(), twh.exp(), anchor
    xy, _, obj, cls = a.split((2, 2, 1, layers[0].nc), -1)
    return xy * gain + offset, g, wh_gain, obj, cls


def xywh(parts):
    """decode_parts' output as (b, n, 5 + classes): xywh, objectness, class probabilities."""
    xy, g, wh_gain, obj, cls = parts
    return torch.cat((xy, g * wh_gain, obj, cls), -1)
