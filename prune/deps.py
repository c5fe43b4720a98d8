"""Channel dependencies, computed once from the built model: which convolutions must keep the same
output channels, and which may be pruned in each mode.

Every layer output lives in a "channel space". A convolution opens a new one; upsample, maxpool,
avgpool and dropout pass their input's space on; a shortcut merges the spaces of all its inputs (a
residual chain becomes one space); scale_channels merges the scaled map with the excitation; a
depthwise convolution ties its output to its input. Spaces that cannot change size are fixed: the
inputs of a route that slices by groups (CSP), grouped (not depthwise) convolutions, the conv that
feeds a yolo layer, and spaces with no batch-norm conv at all (no gamma to rank; a conv without BN
inside a group, like SE's excitation conv, follows the group's mask). Routes only concatenate, so
they join nothing; surgery maps their segments.

Groups of convs sharing a space get one mask. Mode 0 prunes spaces of a single conv; mode 1 also
the merged ones (shortcut chains, SE, depthwise), masks united over the group.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from models.layers import (Activation, ConvBNAct, Dropout, GlobalAvgPool, MaxPool, Route,
                           ScaleChannels, SegmentHead, Shortcut, Upsample, YoloLayer,
                           is_depthwise)
from prune.modes import SparsityMode
from prune.plan import PruneError

PASS_THROUGH = (Upsample, MaxPool, GlobalAvgPool, Dropout, Activation)


@dataclass
class ChannelGroup:
    convs: list = field(default_factory=list)  # layer indices whose output channels share a mask
    merged: bool = False                      # tied by a shortcut, SE or depthwise conv
    fixed: bool = False                       # must keep all channels
    why: str = ''


class _Spaces:
    """Union-find over layer indices that open channel spaces."""

    def __init__(self):
        self.parent, self.merged, self.fixed = {}, set(), {}

    def new(self, i):
        self.parent[i] = i
        return i

    def find(self, i):
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a, b):
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra
            self.merged.add(ra)
            if rb in self.merged:
                self.merged.add(ra)
            if rb in self.fixed:
                self.fixed.setdefault(ra, self.fixed[rb])
        return ra

    def fix(self, i, why):
        self.fixed.setdefault(self.find(i), why)



def channel_groups(model) -> list[ChannelGroup]:
    """Groups of convolutions whose output channels must be pruned together."""
    spaces, space_of = _Spaces(), []
    for i, m in enumerate(model.module_list):
        prev = space_of[i - 1] if i else None
        if isinstance(m, ConvBNAct):
            s = spaces.new(i)
            if is_depthwise(m.conv) and prev is not None:
                s = spaces.union(prev, i)
            elif is_depthwise(m.conv):
                spaces.fix(i, 'depthwise convolution after a route')
            elif m.conv.groups > 1:
                spaces.fix(i, 'grouped convolution')
                if prev is not None:
                    spaces.fix(prev, 'input of a grouped convolution')
        elif isinstance(m, (Shortcut, ScaleChannels)):
            if prev is None or any(space_of[j] is None for j in m.froms):
                raise PruneError(f'layer {i}: {type(m).__name__} of a concatenation is not '
                                 'supported by channel pruning yet')
            s = _join(model, spaces, i, m, prev, space_of)
        elif isinstance(m, Route):
            s = space_of[m.froms[0]] if len(m.froms) == 1 and m.groups == 1 else None
            if m.groups > 1:  # otherwise a concatenation: no space of its own
                for j in m.froms:
                    spaces.fix(space_of[j], 'sliced by a route with groups')
        elif isinstance(m, (YoloLayer, SegmentHead)):
            spaces.fix(prev, f'feeds a {"yolo" if isinstance(m, YoloLayer) else "segmentation"} '
                             'head')
            s = prev
        elif isinstance(m, PASS_THROUGH):
            s = prev  # None after a route: still a concatenation
        else:
            raise TypeError(f'layer {i}: no channel rule for {type(m).__name__}')
        space_of.append(s)
    return _collect(model, spaces)


def _join(model, spaces, i, m, prev, space_of):
    """The space of a shortcut or scale_channels output: its inputs' spaces merged, or, where
    inputs do not match channel for channel (a partial residual, a per-position scale), fixed."""
    froms = [space_of[j] for j in m.froms]
    if isinstance(m, ScaleChannels) and m.scale_wh:
        spaces.fix(froms[0], 'scaled per position by a one-channel map')
        return froms[0]
    widths = {model.channels[j] for j in [i - 1] + m.froms}
    if len(widths) > 1:
        for s in [prev] + froms:
            spaces.fix(s, 'a residual between different channel counts')
        return prev
    s = prev
    for f in froms:
        s = spaces.union(s, f)
    return s


def _collect(model, spaces):
    groups = {}
    for i, m in enumerate(model.module_list):
        if isinstance(m, ConvBNAct):
            root = spaces.find(i)
            g = groups.setdefault(root, ChannelGroup())
            g.convs.append(i)
    for root, g in groups.items():
        g.merged = root in spaces.merged or len(g.convs) > 1
        if root in spaces.fixed:
            g.fixed, g.why = True, spaces.fixed[root]
        elif not any(isinstance(model.module_list[i].bn, nn.BatchNorm2d) for i in g.convs):
            g.fixed, g.why = True, 'no batch norm gamma to rank'  # members without BN follow
    return list(groups.values())


def prunable_groups(model, mode: int) -> list[ChannelGroup]:
    """Mode 0: single-conv spaces; mode 1: also shortcut/SE/depthwise-merged spaces."""
    if mode not in (SparsityMode.NORMAL, SparsityMode.SHORTCUT):
        raise PruneError(f'channel pruning mode must be 0 or 1, got {mode}')
    return [g for g in channel_groups(model)
            if not g.fixed and (mode == SparsityMode.SHORTCUT or not g.merged)]


def residual_blocks(model) -> list[int]:
    """Shortcut layers of the residual blocks layer pruning may drop whole.

    A block is ``[conv, conv, shortcut from=-3]`` with a plain sum (no weights, linear): dropping
    it leaves the shortcut's input, so nothing else may read either conv.
    """
    ml, found = model.module_list, []
    for s, m in enumerate(ml):
        if not (isinstance(m, Shortcut) and m.froms == [s - 3] and s >= 3):
            continue
        convs_only = all(isinstance(ml[s - k], ConvBNAct) for k in (1, 2))
        plain = m.weights is None and isinstance(m.act, nn.Identity)
        read_elsewhere = any(j in (s - 2, s - 1) for other in ml for j in other.froms)
        if convs_only and plain and not read_elsewhere:
            found.append(s)
    return found
