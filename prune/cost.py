"""What a cut saves, in BFLOPs, measured by surgery on the real graph (routes, shortcuts, upsample
and maxpool included) rather than counted by hand."""
from __future__ import annotations

import torch

from prune.masks import group_score
from prune.plan import PruneError, PrunePlan
from prune.surgery import prune_model


def channel_costs(model, groups, img_size) -> list[float]:
    """Per group: BFLOPs saved by removing one of its channels (first order: others kept)."""
    base = model.info(img_size)['bflops']
    costs = []
    for grp in groups:
        mask = torch.ones(model.module_list[grp.convs[0]].conv.out_channels, dtype=torch.bool)
        mask[0] = False
        cut = prune_model(model, PrunePlan(masks={i: mask for i in grp.convs}))
        costs.append(base - cut.info(img_size)['bflops'])
    return costs


def cost_weights(model, groups, img_size) -> list[float]:
    """Per group: its channel cost over the mean cost of all prunable channels (mean weight 1)."""
    costs = channel_costs(model, groups, img_size)
    counts = [len(group_score(model, g)) for g in groups]
    mean = sum(c * n for c, n in zip(costs, counts)) / sum(counts)
    return [c / mean for c in costs]


def bflops_below(model, groups, img_size, small) -> float:
    """Share of the model's BFLOPs that dropping every channel scoring under ``small`` removes
    (each group keeping its best channel): the cost-weighted twin of counting small gammas."""
    masks = {}
    for grp in groups:
        score = group_score(model, grp)
        keep = score >= small
        keep[score.argmax()] = True
        masks.update({i: keep for i in grp.convs})
    base = model.info(img_size)['bflops']
    return 1 - prune_model(model, PrunePlan(masks=masks)).info(img_size)['bflops'] / base


def percent_for_bflops(model, keep, img_size, select) -> float:
    """Smallest percent (0.01 steps) whose plan ``select(model, percent)`` leaves at most ``keep``
    of the BFLOPs. BFLOPs fall monotonically with the percent, so bisect; a percent the method
    refuses counts as too low. A target that no percent reaches is a PruneError saying the
    smallest share that can be reached."""
    full = model.info(img_size)['bflops']

    def share(percent):
        try:
            return prune_model(model, select(model, percent / 100)).info(img_size)['bflops'] / full
        except PruneError:
            return 1.0

    lo, hi = 0, 99
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if share(mid) <= keep else (mid + 1, hi)
    reached = share(lo)
    if reached > keep:
        raise PruneError(f'keeping {keep:.1%} of the BFLOPs is out of reach: the deepest cut '
                         f'this method makes here keeps {reached:.1%} (fixed layers, heads and '
                         f'the per-layer floor stay)')
    return lo / 100
