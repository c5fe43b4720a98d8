"""Cross-layer equalization of activation ranges: the float network computes the same function
with every channel of a conv's output on a similar range, so one int8 scale per tensor fits them
all.

Why: in networks of depthwise blocks (Yolo-Fastest, MobileNets) the channels of one tensor span
ranges a hundred times apart after BN; a per-tensor scale chosen for the widest leaves the
narrow ones a few levels, and the rounding compounds block after block (Nagel et al., "Data-Free
Quantization Through Weight Equalization and Bias Correction", 2019, whose equalization this is,
balanced on observed activation ranges rather than weight ranges).

How: for a conv a (with BN; activation leaky, relu or linear, all positively homogeneous:
f(x / s) = f(x) / s for s > 0) whose output only the next conv b reads, channel c of a's output is
divided by s_c (BN scale and shift) and b's input channel c multiplied by s_c: the same function.
When b is depthwise its per-channel weight scales absorb s_c exactly, and s_c brings every
channel to the widest one's range; otherwise s_c brings it halfway (the square root), since b's
per-output-channel weight scales then see the enlarged columns.
"""
from __future__ import annotations

import torch
from torch import nn

from models.layers import ConvBNAct

HOMOGENEOUS = (nn.LeakyReLU, nn.ReLU, nn.Identity)


def equalizable_pairs(model):
    """[(a, depthwise b)] for the convs a whose output only conv a + 1 reads."""
    ml = model.module_list
    read = {f for m in ml for f in m.froms}
    pairs = []
    for a in range(len(ml) - 1):
        first, second = ml[a], ml[a + 1]
        if (isinstance(first, ConvBNAct) and isinstance(second, ConvBNAct)
                and isinstance(first.bn, nn.BatchNorm2d)
                and isinstance(first.act, HOMOGENEOUS) and a not in read):
            c = second.conv
            pairs.append((a, c.groups == c.in_channels == c.out_channels))
    return pairs


@torch.no_grad()
def channel_ranges(model, layers, batches):
    """{layer: max |output| per channel} over the batches."""
    ranges = dict.fromkeys(layers)

    def see(i):
        def hook(_, __, y):
            r = y.detach().abs().amax((0, 2, 3))
            ranges[i] = r if ranges[i] is None else torch.maximum(ranges[i], r)
        return hook

    handles = [model.module_list[i].register_forward_hook(see(i)) for i in layers]
    try:
        for x in batches:
            model(x)
    finally:
        for h in handles:
            h.remove()
    return ranges


@torch.no_grad()
def equalize(model, batches):
    """Equalize a float model in place (eval mode); returns the number of pairs rescaled."""
    model.eval()
    pairs = equalizable_pairs(model)
    ranges = channel_ranges(model, [a for a, _ in pairs], batches)
    for a, depthwise in pairs:
        r = ranges[a]
        s = torch.where(r > 1e-6 * r.max(), r / r.max(), torch.ones_like(r))  # dead: as they are
        if not depthwise:
            s = s.sqrt()
        first, second = model.module_list[a], model.module_list[a + 1]
        first.bn.weight /= s
        first.bn.bias /= s
        shape = (-1, 1, 1, 1) if depthwise else (1, -1, 1, 1)
        second.conv.weight *= s.view(shape)
    return len(pairs)
