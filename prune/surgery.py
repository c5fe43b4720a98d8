"""Surgery: a prune plan -> a reduced cfg and state dict that reproduce the masked network.

A plan says which output channels each conv keeps and which residual blocks go. From it:

1. ``layer_masks``: the channels every layer's output keeps. Convs take their mask; upsample,
   maxpool, avgpool and dropout pass theirs on; routes concatenate (slicing for groups); a
   shortcut keeps a channel if any input does (a dropped block's convs keep none, so the sum
   keeps the stream's channels); scale_channels keeps what both of its inputs keep.
2. ``compensate``: a pruned channel is not silent, it carries a constant, act(beta) once its gamma
   is gone. That constant is carried through shortcuts, routes, upsample and pools to the convs
   that read it and moved into them (BN running mean, or bias without BN): conv(x + c) =
   conv(x) + sum(W) c away from the border. A conv that reads only pruned channels (the second
   conv of a dropped block) turns its constant input into its own constant output.
3. ``masked_model``: the compensated network at full size with every pruned channel multiplied by
   zero. ``prune_model``: the same network with those channels cut out: a new cfg (filters,
   depthwise groups, route/shortcut references renumbered) and the sliced state dict. Both
   compute the same function exactly, since a zero channel contributes nothing, border included.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from models.darknet import Darknet
from models.layers import (Activation, ConvBNAct, Route, ScaleChannels, SegmentHead, Shortcut,
                           Upsample, YoloLayer, is_depthwise)
from prune.plan import PruneError, PrunePlan


def layer_masks(model, plan: PrunePlan) -> list[torch.Tensor]:
    """Kept output channels of every layer, checked against the channel ties of the graph."""
    gone, out = plan.dropped_layers(), []
    for i, m in enumerate(model.module_list):
        prev = out[i - 1] if i else torch.ones(model.in_channels, dtype=torch.bool)
        if isinstance(m, ConvBNAct):
            mask = _conv_mask(m, i, prev, plan, gone)
        elif isinstance(m, Shortcut):
            mask = prev.clone()
            for j in m.froms:
                k = min(len(mask), len(out[j]))  # a partial residual adds the shared channels
                mask[:k] |= out[j][:k]
        elif isinstance(m, ScaleChannels):
            mask = out[m.froms[0]] & prev if not m.scale_wh else out[m.froms[0]].clone()
        elif isinstance(m, Route):
            mask = torch.cat([out[j].chunk(m.groups)[m.group_id] for j in m.froms])
        else:
            mask = prev
        out.append(mask)
    _check_ties(model, out, gone)
    return out


def _conv_mask(m, i, prev, plan, gone):
    n = m.conv.out_channels
    if i in gone:
        return torch.zeros(n, dtype=torch.bool)
    mask = plan.masks.get(i)
    if mask is None:
        mask = torch.ones(n, dtype=torch.bool)
    mask = torch.as_tensor(mask, dtype=torch.bool).cpu()
    if mask.shape != (n,):
        raise PruneError(f'layer {i}: mask has {mask.numel()} entries for {n} channels')
    if not mask.any():
        raise PruneError(f'layer {i}: the plan removes all {n} channels; every layer keeps one')
    if is_depthwise(m.conv) and not torch.equal(mask, prev):
        raise PruneError(f'layer {i}: a depthwise conv must keep the channels of its input')
    if m.conv.groups > 1 and not is_depthwise(m.conv) and not (mask.all() and prev.all()):
        raise PruneError(f'layer {i}: grouped convolutions cannot be pruned')
    return mask


def _check_ties(model, out, gone):
    """Channels that are added, multiplied, sliced or detected on must be kept alike."""
    for i, m in enumerate(model.module_list):
        inputs = [j for j in [i - 1] + list(m.froms) if j not in gone]
        if isinstance(m, ScaleChannels) and m.scale_wh:
            inputs = list(m.froms)  # the one-channel map multiplies every channel
        if isinstance(m, (Shortcut, ScaleChannels)):
            if any(out[j].shape != out[i].shape for j in inputs):
                if not all(out[j].all() for j in inputs):
                    raise PruneError(f'layer {i}: a residual between different channel counts '
                                     'keeps all channels')
                continue
            if any(not torch.equal(out[j], out[i]) for j in inputs):
                raise PruneError(f'layer {i}: the inputs of this {type(m).__name__} are masked '
                                 'differently; tied channels need one mask')
        elif isinstance(m, Route) and m.groups > 1:
            if not all(out[j].all() for j in m.froms):
                raise PruneError(f'layer {i}: a route with groups slices its inputs, which '
                                 'must keep all channels')
        elif isinstance(m, (YoloLayer, SegmentHead)) and not out[i - 1].all():
            head = 'a yolo layer' if isinstance(m, YoloLayer) else 'the segmentation head'
            raise PruneError(f'layer {i - 1}: feeds {head} and must keep all channels')


# ---- compensation: constants of pruned channels, moved into the layers that read them ----

def _conv_delta(conv, const_in):
    """conv(x + c) - conv(x) for a per-channel constant c, away from the border."""
    g = conv.groups
    wsum = conv.weight.detach().sum((2, 3))  # (out, in / groups)
    out, in_g = wsum.shape
    delta = torch.einsum('goi,gi->go', wsum.view(g, out // g, in_g), const_in.view(g, in_g))
    return delta.reshape(out)


def _bn_eval(bn, z):
    if not isinstance(bn, nn.BatchNorm2d):
        return z
    std = (bn.running_var + bn.eps).sqrt()
    return (z - bn.running_mean) / std * bn.weight.detach() + bn.bias.detach()


def _act(act, v):
    return act(v.view(1, -1, 1, 1)).view(-1)


def _conv_const(m, delta, live_input):
    """Value of each pruned channel once it is gone, before this layer is compensated."""
    conv, bn = m.conv, m.bn
    bias = conv.bias.detach() if conv.bias is not None else torch.zeros_like(delta)
    if live_input:  # gamma -> 0 leaves beta (a conv without BN: its bias)
        pre = bn.bias.detach() if isinstance(bn, nn.BatchNorm2d) else bias
    else:           # nothing but constants comes in: the output is exactly constant
        pre = _bn_eval(bn, bias + delta)
    return _act(m.act, pre)


def _compensate_conv(m, const_in, keep, live_input):
    delta = _conv_delta(m.conv, const_in)
    const = torch.where(keep, torch.zeros_like(delta), _conv_const(m, delta, live_input))
    with torch.no_grad():
        if isinstance(m.bn, nn.BatchNorm2d):
            m.bn.running_mean.sub_(delta.to(m.bn.running_mean))
        else:
            m.conv.bias.add_(delta.to(m.conv.bias))
    return const


def _sum_const(m, consts, keep, i):
    w = m.mixing_weights().detach() if m.weights is not None else None
    total = torch.zeros_like(consts[0])
    for k, c in enumerate(consts):
        n = min(len(total), len(c))  # a partial residual adds the shared channels
        add = c[:n] if w is None else c[:n] * w[k].view(-1)[:n]
        total = torch.cat((total[:n] + add, total[n:]))
    return _live_const(m.act, total, keep, i)


def _live_const(act, total, keep, i):
    """Kept channels may carry a constant only through a linear activation."""
    if not isinstance(act, nn.Identity) and total[keep].abs().max(initial=0) > 0:
        raise PruneError(f'layer {i}: a constant reaches kept channels through a non-linear '
                         'activation, which cannot be compensated')
    return torch.where(keep, total, _act(act, total))


def compensate(model, masks) -> list[torch.Tensor]:
    """Fold every pruned channel's constant into its readers, in place; returns the constants."""
    consts, dtype = [], next(model.parameters()).dtype
    for i, m in enumerate(model.module_list):
        prev = consts[i - 1] if i else torch.zeros(model.in_channels, dtype=dtype)
        live = masks[i - 1].any().item() if i else True
        if isinstance(m, ConvBNAct):
            c = _compensate_conv(m, prev, masks[i], live)
        elif isinstance(m, Shortcut):
            c = _sum_const(m, [prev] + [consts[j] for j in m.froms], masks[i], i)
        elif isinstance(m, ScaleChannels):
            scale = prev if not m.scale_wh else torch.zeros_like(consts[m.froms[0]])
            c = _live_const(m.act, consts[m.froms[0]] * scale, masks[i], i)
        elif isinstance(m, Activation):
            c = _live_const(m.act, prev, masks[i], i)
        elif isinstance(m, Route):
            c = torch.cat([consts[j].chunk(m.groups)[m.group_id] for j in m.froms])
        elif isinstance(m, Upsample):
            c = prev * m.scale
        elif isinstance(m, (YoloLayer, SegmentHead)):
            if prev.abs().max() > 0:
                raise PruneError(f'layer {i - 1}: a constant reaches a head')
            c = prev
        else:  # maxpool, avgpool and dropout keep a constant as it is
            c = prev
        consts.append(c)
    return consts


# ---- the masked network (full size) and the pruned one (channels cut out) ----

def masked_model(model, plan: PrunePlan):
    """The compensated network with pruned channels zeroed (forward hooks), same size."""
    device = next(model.parameters()).device
    model = copy.deepcopy(model).cpu().eval()  # the bookkeeping is small: keep it on the CPU
    masks = layer_masks(model, plan)
    compensate(model, masks)
    for m, mask in zip(model.module_list, masks):
        if not mask.all():
            m.register_forward_hook(_zero_hook(mask))
    return model.to(device)


def _zero_hook(mask):
    def hook(module, inputs, output):
        return output * mask.to(output.device, output.dtype).view(1, -1, 1, 1)
    return hook


def prune_model(model, plan: PrunePlan):
    """A new, smaller Darknet computing what ``masked_model`` computes."""
    masks = layer_masks(model, plan)
    source = copy.deepcopy(model).cpu().eval()
    compensate(source, masks)
    new_index = renumber(model, plan)
    pruned = Darknet(_pruned_blocks(model, plan, masks, new_index))
    state = {}
    for i, m in enumerate(source.module_list):
        if new_index[i] is None:
            continue
        in_mask = masks[i - 1] if i else torch.ones(model.in_channels, dtype=torch.bool)
        for name, t in SLICERS.get(type(m), _as_is)(m, masks[i], in_mask).items():
            state[f'module_list.{new_index[i]}.{name}'] = t
    pruned.load_state_dict(state)
    return pruned.to(next(model.parameters()).device).eval()


def renumber(model, plan):
    """Old layer -> new layer, None for the layers of dropped blocks."""
    gone, new_index, n = plan.dropped_layers(), [], 0
    for i in range(len(model.module_list)):
        new_index.append(None if i in gone else n)
        n += i not in gone
    return new_index


def _target(model, plan, new_index, j, reader):
    """New index of what old layer j's output has become (a dropped block: its input)."""
    while new_index[j] is None:
        if j not in plan.dropped:
            raise PruneError(f'layer {reader} reads layer {j}, which layer pruning removes')
        j = model.module_list[j].froms[0]
    return new_index[j]


REFERENCE_KEYS = {'route': 'layers', 'shortcut': 'from', 'scale_channels': 'from', 'sam': 'from'}


def _pruned_blocks(model, plan, masks, new_index):
    blocks = [model.blocks[0].copy()]
    for i, m in enumerate(model.module_list):
        if new_index[i] is None:
            continue
        b = model.blocks[i + 1].copy()
        if isinstance(m, ConvBNAct):
            b.options['filters'] = str(int(masks[i].sum()))
            for key in plan.consumed:
                b.options.pop(key, None)
            if is_depthwise(m.conv):
                b.options['groups'] = b.options['filters']
        key = REFERENCE_KEYS.get(b.type)
        if key:
            raws, refs = b.get(key), []
            for raw, j in zip(raws if isinstance(raws, list) else [raws], m.froms):
                t = _target(model, plan, new_index, j, i)
                refs.append(t - new_index[i] if raw < 0 else t)
            b.options[key] = ','.join(map(str, refs))
        blocks.append(b)
    return blocks


# ---- per-type slicing of the compensated weights (Torch-Pruning style: one small function each)

def _slice_conv(m, out_mask, in_mask):
    w = m.conv.weight.detach()[out_mask]
    if m.conv.groups == 1:
        w = w[:, in_mask]
    state = {'conv.weight': w}
    if m.conv.bias is not None:
        state['conv.bias'] = m.conv.bias.detach()[out_mask]
    if isinstance(m.bn, nn.BatchNorm2d):
        for name in ('weight', 'bias', 'running_mean', 'running_var'):
            state[f'bn.{name}'] = getattr(m.bn, name).detach()[out_mask]
        state['bn.num_batches_tracked'] = m.bn.num_batches_tracked
    return state


def _slice_shortcut(m, out_mask, _):
    if m.weights is None:
        return {}
    w = m.weights.detach()
    return {'weights': w[:, out_mask] if w.shape[1] > 1 else w}


def _as_is(m, *_):
    return {k: v.detach() for k, v in m.state_dict().items()}


SLICERS = {ConvBNAct: _slice_conv, Shortcut: _slice_shortcut}
