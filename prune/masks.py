"""Importance and masks: the only part in which the prune methods differ.

Channel pruning ranks channels by |gamma| of their BN. A group of tied convs (a shortcut chain,
SE, depthwise) keeps a channel if any member's gamma is above the threshold: the union of the
members' masks. The global threshold is the ``percent`` quantile of the gammas of every member
conv: ``percent`` is the share of gammas at or below it.

``rank='layer'`` divides each group's gammas by the group's largest first. A conv whose output
goes through BN into another conv and BN can scale its gammas and betas by any factor without
changing the network, so raw gammas of different layers are on arbitrary scales: under Adam the
L1 push shrinks some layers whole (every gamma together) and one global threshold then removes
nearly all of their channels.

``criterion='l1'`` ranks by the L1 norm of each filter of the BN-folded conv (the weights times
|gamma| / sqrt(running var)): the filter the deployed network computes with. It needs no sparse
training, so it suits a pretrained model; the raw filter norm would not do, since the BN after
the conv undoes its scale.

Layer pruning ranks residual blocks by the mean |gamma| of their first conv.

The cfg method carries out lightNet's per-layer ``pruning=<fraction>``: that share of a conv's
filters goes, ranked by the L1 norm of the filter weights (summed over a group's convs, which keep
one mask). A group takes the largest fraction any member asks for; groups that cannot change
width (they feed a head, a grouped conv, ...) stay whole and are listed.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from prune.deps import channel_groups, prunable_groups, residual_blocks
from prune.plan import PruneError, PrunePlan
from utils.log import LOGGER

RANKS = ('global', 'layer')
CRITERIA = ('gamma', 'l1')


def _gammas(model, i):
    bn = model.module_list[i].bn
    return bn.weight.detach().abs().float().cpu() if isinstance(bn, nn.BatchNorm2d) else None


def folded_l1(model, i):
    """Per output channel of conv ``i``: L1 norm of its filter with the BN folded in."""
    m = model.module_list[i]
    if not isinstance(m.bn, nn.BatchNorm2d):
        return None
    scale = m.bn.weight.detach().abs() / (m.bn.running_var + m.bn.eps).sqrt()
    return _filter_l1(model, i) * scale.float().cpu()


SCORES = {'gamma': _gammas, 'l1': folded_l1}


def _member_gammas(model, group, rank='global', criterion='gamma'):
    if criterion not in CRITERIA:
        raise PruneError(f"criterion must be one of {', '.join(CRITERIA)}, got '{criterion}'")
    gammas = [g for g in (SCORES[criterion](model, i) for i in group.convs) if g is not None]
    if rank not in RANKS:
        raise PruneError(f"--rank must be one of {', '.join(RANKS)}, got '{rank}'")
    top = max(g.max() for g in gammas)
    return [g / top for g in gammas] if rank == 'layer' and top > 0 else gammas


def group_score(model, group, rank='global', criterion='gamma') -> torch.Tensor:
    """Per channel: the largest score over the group's convs (keeping = union of masks)."""
    return torch.stack(_member_gammas(model, group, rank, criterion)).amax(0)


def threshold(model, groups, percent, rank='global', criterion='gamma'):
    """(threshold, sorted scores): channels scoring at or below the threshold are pruned."""
    if not 0 <= percent < 1:
        raise PruneError(f'--percent must be in [0, 1), got {percent}')
    values = torch.cat([g for grp in groups
                        for g in _member_gammas(model, grp, rank, criterion)])
    values = values.sort().values
    k = int(percent * len(values))  # prune the k smallest: keep what is above the k-th
    return (values[k - 1].item() if k else -1.0), values


def channel_plan(model, mode, percent, min_keep=0.0, clamp=False, round_to=1,
                 rank='global', criterion='gamma') -> PrunePlan:
    """Masks from a global threshold; every group keeps max(1, min_keep * channels), rounded up
    to ``round_to``. Too few left: keep the best (``clamp``) or raise with the highest percent
    that works."""
    groups = prunable_groups(model, mode)
    if not groups:
        raise PruneError(f'no prunable convolutions in mode {mode}')
    thr, values = threshold(model, groups, percent, rank, criterion)
    plan, short = PrunePlan(), []
    for grp in groups:
        score = group_score(model, grp, rank, criterion)
        n, need = int((score > thr).sum()), _minimum(len(score), min_keep)
        if n < need and not clamp:
            short.append((grp, n, need))
        keep = min(len(score), _round_up(max(n, need), round_to))
        mask = torch.zeros(len(score), dtype=torch.bool)
        mask[score.topk(keep).indices] = True
        plan.masks.update({i: mask for i in grp.convs})
    if short:
        raise PruneError(_too_high(model, groups, values, percent, short, min_keep, rank,
                                   criterion))
    return plan


def _minimum(n, min_keep):
    """Channels a layer must keep before rounding up to ``round_to``."""
    return min(n, max(1, math.ceil(min_keep * n)))


def _round_up(n, r):
    return n if r <= 1 else math.ceil(n / r) * r


def _too_high(model, groups, values, percent, short, min_keep, rank, criterion):
    """The message for a percent that leaves some layer too few channels."""
    limits = []  # each group's need-th best score must stay at or above the threshold
    for grp in groups:
        score = group_score(model, grp, rank, criterion).sort(descending=True).values
        limits.append(score[_minimum(len(score), min_keep) - 1].item())
    best = math.floor(int((values < min(limits)).sum()) / len(values) * 1000) / 1000
    grp, n, need = short[0]
    total = model.module_list[grp.convs[0]].conv.out_channels
    return (f'--percent {percent} leaves layer {grp.convs[0]} with {n} of {total} channels '
            f'(minimum {need}); the highest --percent that works is {best}')


def layer_plan(model, n_blocks) -> PrunePlan:
    """Drop the ``n_blocks`` residual blocks whose first conv has the smallest mean |gamma|."""
    blocks = residual_blocks(model)
    if n_blocks < 0 or n_blocks > len(blocks):
        raise PruneError(f'--shortcuts {n_blocks}: this network has {len(blocks)} residual '
                         f'blocks that layer pruning can drop')
    scores = []
    for s in blocks:
        g = _gammas(model, s - 2)
        if g is None:
            raise PruneError(f'layer {s - 2}: has no batch norm to rank its block by')
        scores.append(g.mean().item())
    order = sorted(range(len(blocks)), key=lambda k: scores[k])
    return PrunePlan(dropped=sorted(blocks[k] for k in order[:n_blocks]))


def cfg_plan(model, round_to=1) -> PrunePlan:
    """Masks from the cfg's ``pruning=`` keys (the cfg method)."""
    plan, whole = PrunePlan(consumed=('pruning',)), []
    for grp in channel_groups(model):
        fraction, asked = _asked_fraction(model, grp)
        if not fraction:
            continue
        if grp.fixed:
            whole.append(f'{asked} ({grp.why})')
            continue
        score = sum(_filter_l1(model, i) for i in grp.convs)
        n = len(score)
        keep = min(n, _round_up(max(1, n - math.floor(fraction * n)), round_to))
        mask = torch.zeros(n, dtype=torch.bool)
        mask[score.topk(keep).indices] = True
        plan.masks.update({i: mask for i in grp.convs})
    if whole:
        LOGGER.warning('pruning= left whole, these channels cannot change: ' + ', '.join(whole))
    if not plan.masks:
        raise PruneError('no [convolutional] with pruning= that can be pruned: the cfg method '
                         'carries out the cfg\'s pruning=<fraction> keys')
    return plan


def _asked_fraction(model, grp):
    """The largest pruning= of the group's convs, and the layer that asks for it."""
    best, asked = 0.0, None
    for i in grp.convs:
        block = model.blocks[i + 1]
        f = block.get('pruning')
        if not 0 <= f < 1:
            raise block.error(f'pruning={f}: must be a fraction in [0, 1)', 'pruning')
        if f > best:
            best, asked = f, f'layer {i}'
    return best, asked


def _filter_l1(model, i):
    return model.module_list[i].conv.weight.detach().abs().float().sum((1, 2, 3)).cpu()
