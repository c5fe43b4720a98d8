"""The 2:4 pattern (lightNet's ``sparse=1``): in every run of 4 consecutive input channels at one
kernel position of one filter, at most 2 weights are non-zero. Which convs can hold it, which a
model makes 2:4, and the magnitude masks; training, checks and exports build on these
(prune/sparse24.py, quantize/sensitivity.py, export.py)."""
from __future__ import annotations

import torch
from torch import nn

GROUP, KEEP = 4, 2


def runs_of_4(w):
    """(out, in, kh, kw) -> (out, kh, kw, in / 4, 4): the runs the pattern applies to."""
    o, i, kh, kw = w.shape
    return w.permute(0, 2, 3, 1).reshape(o, kh, kw, i // GROUP, GROUP)


def mask_24(w) -> torch.Tensor:
    """Boolean mask of w's shape keeping the 2 largest |w| of every run of 4 input channels."""
    runs = runs_of_4(w.detach().abs().float())
    keep = runs.topk(KEEP, dim=-1).indices
    mask = torch.zeros_like(runs, dtype=torch.bool).scatter_(-1, keep, True)
    o, i, kh, kw = w.shape
    return mask.reshape(o, kh, kw, i).permute(0, 3, 1, 2).contiguous()


def holds_24(w) -> bool:
    """Whether at most 2 of every run of 4 input channels are non-zero (w: tensor or array)."""
    w = torch.as_tensor(w)
    if w.dim() != 4 or w.shape[1] % GROUP:
        return False
    return bool(((runs_of_4(w) != 0).sum(-1) <= KEEP).all())


def layer_conv(m):
    conv = getattr(m, 'conv', None)
    return conv if isinstance(conv, nn.Conv2d) else None


def why_dense(conv) -> str | None:
    """Why a conv cannot be 2:4, or None when it can."""
    if conv.groups != 1:
        return 'grouped/depthwise'
    if conv.in_channels % GROUP:
        return f'{conv.in_channels} input channels'
    return None


def sparse_layers(model):
    """(layers to make 2:4, {layer: why it stays dense}) by the rule in the module docstring."""
    convs = {i: c for i, m in enumerate(model.module_list) if (c := layer_conv(m)) is not None}
    marked = [i for i in convs if model.blocks[i + 1].get('sparse', 0)]
    heads = {j - 1 for j in model.head_layers}
    wanted = marked or [i for i in convs if i not in heads]
    dense = {i: why for i in wanted if (why := why_dense(convs[i]))}
    return [i for i in wanted if i not in dense], dense


def can_be_24(model) -> list[int]:
    """Every conv whose shape allows 2:4, heads included (what sensitivity measures)."""
    return [i for i, m in enumerate(model.module_list)
            if (c := layer_conv(m)) is not None and why_dense(c) is None]


def sparse_weights(model) -> bool:
    """Whether any conv the cfg marks sparse=1 holds 2:4 (TensorRT's SPARSE_WEIGHTS then pays)."""
    return any(model.blocks[i + 1].get('sparse', 0) and holds_24(c.weight.detach())
               for i, m in enumerate(model.module_list) if (c := layer_conv(m)) is not None)
