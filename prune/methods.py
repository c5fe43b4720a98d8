"""The prune methods, one registry: name -> how it selects channels or blocks, and the options it
takes. The six prune scripts, compress.py and the benches read it, so an option a method accepts
reaches it from every tool, with one default.

Adding a method: write its selection (a function of the model and its options returning a
PrunePlan, from prune/masks.py's pieces), register it here with the options it takes, and add a
thin script beside the others if it should have a command of its own.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from prune.masks import RANKS, cfg_plan, channel_plan, layer_plan
from utils.options import at_least, unit_float

# option name -> (flags, argparse keywords): the selection flags the methods share
OPTIONS = {
    'percent': (['--percent'], {'type': unit_float, 'default': 0.5,
                                'help': 'share of the ranked gammas to prune'}),
    'min_keep': (['--min-keep'], {'type': float, 'default': 0.0, 'help': 'every layer keeps at '
                                  'least this share of its channels (and one), or it is an error'}),
    'layer_keep': (['--layer_keep', '--layer-keep'], {'type': unit_float, 'default': 0.01, 'help':
                   'a layer under this share of its channels keeps its best ones instead'}),
    'round': (['--round'], {'type': at_least(1), 'default': 1,
                            'help': 'kept channels per layer: a multiple of this'}),
    'rank': (['--rank'], {'default': 'global', 'choices': RANKS,
                          'help': 'global: raw |gamma|; layer: |gamma| over the largest of its '
                                  'layer (layers whose scale the sparse training shrank)'}),
    'shortcuts': (['--shortcuts', '--shortcut'], {'type': at_least(1), 'default': 2,
                                                  'help': 'residual blocks to drop'}),
}


@dataclass(frozen=True)
class Method:
    name: str
    select: object            # (model, **options) -> PrunePlan
    options: tuple            # names in OPTIONS
    sparsity: int             # the train.py --prune mode whose gammas it ranks
    defaults: dict = field(default_factory=dict)  # this method's own defaults

    def default(self, option):
        return self.defaults.get(option, OPTIONS[option][1]['default'])

    def resolve(self, **given):
        """Every option of the method: the given value (None: its default); others ignored."""
        return {k: self.default(k) if given.get(k) is None else given[k] for k in self.options}

    def plan(self, model, *args, **kw):
        """The PrunePlan for ``model``: options by keyword, or positionally in the order of
        ``options`` (percent first); the rest take the method's defaults."""
        return self.select(model, **self.resolve(**dict(zip(self.options, args)) | kw))

    def tag(self, opts):
        """The file name part that tells cuts apart: percent and/or blocks."""
        parts = [f"{opts['percent']}"] if 'percent' in opts else []
        if 'shortcuts' in opts:
            parts.append(f"shortcuts{opts['shortcuts']}")
        return '_'.join(parts)


def _channels(mode, floor, clamp):
    """A channel method: one global threshold in prune mode ``mode``; ``floor`` names the option
    that is each layer's minimum share; ``clamp``: a layer under it keeps its best channels
    instead of the cut being an error."""
    def select(model, percent=0.5, rank='global', round=1, **kw):  # noqa: A002 (the flag)
        return channel_plan(model, mode=mode, percent=percent, min_keep=kw.get(floor, 0.0),
                            clamp=clamp, round_to=round, rank=rank)
    return select


def _layers(model, shortcuts=2):
    return layer_plan(model, shortcuts)


def _cfg(model, round=1):  # noqa: A002 (the flag)
    return cfg_plan(model, round_to=round)


def _layer_channels(model, percent=0.5, shortcuts=2, layer_keep=0.01, rank='global', round=1):  # noqa: A002
    plan = _channels(1, 'layer_keep', True)(model, percent, rank, round, layer_keep=layer_keep)
    plan.dropped = layer_plan(model, shortcuts).dropped
    return plan


METHODS = {m.name: m for m in (
    Method('normal', _channels(0, 'min_keep', False),
           ('percent', 'min_keep', 'rank', 'round'), sparsity=0),
    Method('regular', _channels(0, 'min_keep', False),
           ('percent', 'min_keep', 'rank', 'round'), sparsity=0, defaults={'round': 8}),
    Method('shortcut', _channels(1, 'min_keep', False),
           ('percent', 'min_keep', 'rank', 'round'), sparsity=1),
    Method('slim', _channels(1, 'layer_keep', True),
           ('percent', 'layer_keep', 'rank', 'round'), sparsity=1),
    Method('layer', _layers, ('shortcuts',), sparsity=2),
    Method('layer_channel', _layer_channels,
           ('percent', 'shortcuts', 'layer_keep', 'rank', 'round'), sparsity=1),
    Method('cfg', _cfg, ('round',), sparsity=1),
)}
