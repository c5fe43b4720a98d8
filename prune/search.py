"""The search method: how much to cut from each layer, chosen by measuring what each cut does to
the network's outputs on a few unlabelled photos. No labels and no sparse training: the pruned
network's own dense outputs are the reference, so it suits a pretrained model and a handful of
site photos (compress.py --images).

Each group of tied convs is cut alone, one step at a time (an eighth of its channels, a multiple
of --round, down to --layer_keep), the channels with the smallest BN-folded filter norm first
(prune/masks.py's ``l1``), and each step's mismatch with the dense outputs is measured on the
photos. Then, greedily, the step with the smallest rise in mismatch per BFLOP it saves is taken,
until the cut keeps at most --keep-bflops of the BFLOPs. The per-layer mismatches are measured
alone and added up; that ignores how cuts interact, which the recovery training then absorbs.
"""
from __future__ import annotations

import math

import torch

from prune.deps import prunable_groups
from prune.masks import group_score
from prune.modes import SparsityMode
from prune.plan import PruneError, PrunePlan
from prune.surgery import layer_masks, masked_model, prune_model
from utils.log import LOGGER

STEPS = 8  # a layer's cut is tried in steps of this share of its channels


def mismatch(model, heads, reference):
    """How far raw [yolo] outputs are from the reference's, per image: the mean squared difference
    of each anchor's outputs (box, objectness, classes), weighted by the larger of the two
    objectness probabilities, so that lost and new objects count and background does not."""
    total = 0.0
    for k, (h, r) in enumerate(zip(model.det_heads(heads), model.det_heads(reference))):
        layer = model.module_list[model.yolo_layers[k]]
        prob = (lambda t: t[..., 4]) if layer.new_coords else (lambda t: t[..., 4].sigmoid())
        weight = torch.maximum(prob(h), prob(r))
        total += ((h - r).pow(2).mean(-1) * weight).sum().item() / h.shape[0]
    return total


@torch.no_grad()
def outputs(model, batches):
    return [model(x)[1] for x in batches]


def loss_of(model, plan, batches, reference):
    cut = masked_model(model, plan).eval()
    return sum(mismatch(model, h, r) for h, r in zip(outputs(cut, batches), reference))


def levels(n, floor, round_to):
    """Channel counts a layer of ``n`` is tried at, from the first step down to the floor."""
    step = max(round_to, math.ceil(n / STEPS / round_to) * round_to)
    lowest = max(round_to, math.ceil(floor * n / round_to) * round_to)
    return list(range(n - step, lowest - 1, -step))


def bflops_of(model, img_size):
    """plan -> BFLOPs of its cut, without building it: each layer's BFLOPs times the share of
    its output channels kept, and a dense conv's also times the share of its input kept (the
    surgery's numbers for convs; pooling and upsampling scale with their channels too)."""
    layers = model.info(img_size)['layers']

    def bflops(plan):
        masks = layer_masks(model, plan)
        total = 0.0
        for i, (layer, m) in enumerate(zip(layers, model.module_list)):
            share = masks[i].float().mean().item()
            conv = getattr(m, 'conv', None)
            if conv is not None and conv.groups == 1 and i:
                share *= masks[i - 1].float().mean().item()
            total += layer['bflops'] * share
        return total
    return bflops


def search_plan(model, keep, batches, img_size, floor=0.25, round_to=8) -> PrunePlan:
    """The greedy cut keeping at most ``keep`` of the BFLOPs at ``img_size``, measured on
    ``batches`` (float images in [0, 1])."""
    model = model.eval()
    groups = prunable_groups(model, SparsityMode.SHORTCUT)
    order = [group_score(model, g, criterion='l1').argsort(descending=True) for g in groups]

    def plan_of(counts):
        masks = {}
        for g, rank, n in zip(groups, order, counts):
            mask = torch.zeros(len(rank), dtype=torch.bool)
            mask[rank[:n]] = True
            masks.update({i: mask for i in g.convs})
        return PrunePlan(masks=masks)

    reference = outputs(model, batches)
    full = [len(rank) for rank in order]
    trials = {}  # (group, count) -> mismatch with only that group cut to count
    for k, n in enumerate(full):
        for count in levels(n, floor, round_to):
            alone = full[:k] + [count] + full[k + 1:]
            trials[k, count] = loss_of(model, plan_of(alone), batches, reference)
    estimate, base = bflops_of(model, img_size), model.info(img_size)['bflops']
    counts, target = list(full), keep * base
    while True:  # the estimate is checked against the built cut, and the search goes on if short
        counts = _greedy(counts, full, trials, lambda c: estimate(plan_of(c)), target,
                         floor, round_to)
        if counts is None:
            raise PruneError(f'keeping {keep:.1%} of the BFLOPs is out of reach: every layer is '
                             f'at its floor ({floor:.0%} of its channels)')
        real = prune_model(model, plan_of(counts)).info(img_size)['bflops']
        if real <= keep * base:
            break
        target -= real - keep * base
    LOGGER.info(f'search: {real / base:.1%} of the BFLOPs kept; channels per layer '
                + ', '.join(f'{g.convs[0]}: {c}/{n}' for g, c, n in zip(groups, counts, full)
                            if c < n))
    return plan_of(counts)


def _greedy(counts, full, trials, bflops, target, floor, round_to):
    """Steps taken, cheapest mismatch per BFLOP first, until ``bflops(counts)`` <= target; None
    when every layer reaches its floor first."""
    now = bflops(counts)
    while now > target:
        best = None
        for k, n in enumerate(counts):
            lower = [c for c in levels(full[k], floor, round_to) if c < n]
            if not lower:
                continue
            step = counts[:k] + [lower[0]] + counts[k + 1:]
            after = bflops(step)
            rise = max(trials[k, lower[0]] - trials.get((k, n), 0.0), 0.0)
            if after < now and (best is None or rise / (now - after) < best[0]):
                best = (rise / (now - after), step, after)
        if best is None:
            return None
        _, counts, now = best
    return counts
