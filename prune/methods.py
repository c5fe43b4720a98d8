"""The prune methods, one registry: name -> how it selects channels or blocks, the options it
takes and its help. `python3 -m prune --method NAME`, the reference toolkit's six root scripts
(normal_prune.py ...), compress.py and the benches read it, so an option a method accepts reaches
it from every tool, with one default.

Adding a method: write its selection (a function of the model and its options returning a
PrunePlan, from prune/masks.py's pieces) and register it here with the options it takes and its
help; `python3 -m prune --method` offers it from then on.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from prune.masks import RANKS, cfg_plan, channel_plan, layer_plan
from prune.modes import SparsityMode
from prune.plan import PruneError
from prune.search import search_plan
from utils.datasets import create_dataloader
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
    'keep_bflops': (['--keep-bflops'], {'type': unit_float, 'default': 0.7,
                                        'help': 'the share of the BFLOPs the cut keeps'}),
    'images': (['--images'], {'nargs': '+', 'default': [], 'metavar': 'SOURCE',
                              'help': 'unlabelled photos (folders, lists or globs) the cut is '
                                      'measured on'}),
    'calib': (['--calib'], {'type': at_least(1), 'default': 32,
                            'help': 'how many of the --images photos to measure on'}),
}


@dataclass(frozen=True)
class Method:
    name: str
    select: object            # (model, **options) -> PrunePlan
    options: tuple            # names in OPTIONS
    sparsity: int             # the train.py --prune mode whose gammas it ranks
    defaults: dict = field(default_factory=dict)  # this method's own defaults
    doc: str = ''             # what it cuts and when to use it (its command's help)

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
        if 'keep_bflops' in opts:
            parts.append(f"keep{opts['keep_bflops']}")
        if 'shortcuts' in opts:
            parts.append(f"shortcuts{opts['shortcuts']}")
        return '_'.join(parts)


def _channels(mode, floor, clamp, criterion='gamma'):
    """A channel method: one global threshold in prune mode ``mode`` over the channels' scores
    (prune/masks.py's ``criterion``); ``floor`` names the option that is each layer's minimum
    share; ``clamp``: a layer under it keeps its best channels instead of the cut being an
    error."""
    def select(model, percent=0.5, rank='global', round=1, **kw):  # noqa: A002 (the flag)
        return channel_plan(model, mode=mode, percent=percent, min_keep=kw.get(floor, 0.0),
                            clamp=clamp, round_to=round, rank=rank, criterion=criterion)
    return select


def _layers(model, shortcuts=2):
    return layer_plan(model, shortcuts)


def _search(model, keep_bflops=0.7, images=(), calib=32, layer_keep=0.25, round=8):  # noqa: A002
    if not images:
        raise PruneError('--method search measures each cut on photos: give --images SOURCE...')
    size = model.img_size[1]
    loader, _ = create_dataloader(list(images), max(model.nc, 1), size, calib, workers=0,
                                  shuffle=True, prefix='search: ')
    batch = next(iter(loader))[0].float() / 255
    return search_plan(model, keep_bflops, [batch], size, floor=layer_keep, round_to=round)


def _cfg(model, round=1):  # noqa: A002 (the flag)
    return cfg_plan(model, round_to=round)


def _layer_channels(model, percent=0.5, shortcuts=2, layer_keep=0.01, rank='global', round=1):  # noqa: A002
    slim = _channels(SparsityMode.SHORTCUT, 'layer_keep', True)
    plan = slim(model, percent, rank, round, layer_keep=layer_keep)
    plan.dropped = layer_plan(model, shortcuts).dropped
    return plan


# each method's help (its command's --help; the first line is its summary)
DOCS = {
    'normal': """\
Normal pruning: one global |gamma| threshold over the convs whose channels nothing else shares.

Convs tied to shortcut chains, SE or depthwise convs keep all channels (sparse-train with
``--prune 0``). Too high a ``--percent`` (some layer would keep fewer than ``--min-keep``) is an
error that names the highest percent that works.""",
    'regular': """\
Regular pruning: normal pruning with every kept channel count a multiple of --round (8).

Hardware runs convolutions in blocks of channels (tensor cores, NPU lanes, FPGA PEs), so 37
channels cost what 40 do; rounding up keeps the extra accuracy for free. The channels kept are the
ones with the largest |gamma|.""",
    'shortcut': """\
Shortcut pruning: normal pruning that also prunes the convs tied by shortcut chains.

A chain (every conv whose output is added into one residual stream, and SE / depthwise ties) gets
one mask: a channel stays if any member's |gamma| is above the threshold. Sparse-train with
``--prune 1``. Too high a ``--percent`` is an error naming the highest percent that works.""",
    'slim': """\
Slim pruning: shortcut pruning with a per-layer floor instead of an error.

Every conv, shortcut-tied ones included, is ranked by |gamma| against one global threshold; chains
keep the union of their members' channels; a layer that would fall below ``--layer_keep`` of its
channels keeps its best ones instead. The usual choice after ``train.py -sr --prune 1``.""",
    'l1': """\
L1 pruning: slim pruning's cut ranked by filter norms instead of gammas: no sparse training.

Each channel scores the L1 norm of its filter in the BN-folded conv (the weights times |gamma| /
sqrt(running var)), divided by the largest in its layer (``--rank layer``); one global threshold
cuts, chains keep the union, every layer keeps at least ``--layer_keep`` (a quarter) of its
channels. For a pretrained model that was never sparse-trained; recover it with distillation
(train.py --teacher-only).""",
    'search': """\
Search pruning: each layer's share chosen by measuring its cut on unlabelled photos.

Every layer is cut alone in steps of an eighth of its channels (smallest BN-folded filter norm
first, down to ``--layer_keep``), and each step's effect on the network's outputs is measured on
``--calib`` of the ``--images`` photos against the uncut network's own outputs: no labels, no
sparse training. The steps that cost least per BFLOP saved are taken until ``--keep-bflops`` is
reached (prune/search.py). For a pretrained model; recover it with distillation.""",
    'layer': """\
Layer pruning: drop the --shortcuts N residual blocks whose first conv matters least.

A block ``[conv, conv, shortcut from=-3]`` is ranked by the mean |gamma| of its first conv
(sparse-train with ``--prune 2``); dropping it leaves the residual stream as it was, and routes
that pointed past it are renumbered. Depth falls, so latency falls even where channel pruning
barely helps (GPUs at small batch).""",
    'layer_channel': """\
Layer-channel pruning: slim pruning's channels, then layer pruning's blocks, in one cut.

Masks come from slim pruning (``--percent --layer_keep``), blocks from layer pruning
(``--shortcuts``), both ranked on the same sparse-trained gammas (``train.py -sr --prune 1``).""",
    'cfg': """\
Cfg pruning: carry out lightNet's per-layer ``pruning=<fraction>`` keys.

Each [convolutional] with ``pruning=f`` loses that share of its filters, those with the smallest
L1 norm of their weights; convs tied by a shortcut chain or a depthwise conv keep one mask (the
largest fraction a member asks for), and layers whose width cannot change are listed and left
whole. Writes the reduced cfg (without the carried-out keys) and weights, like the other prune
scripts: ``python3 -m prune --method cfg --cfg C --weights W``.""",
}

N, S, L = SparsityMode.NORMAL, SparsityMode.SHORTCUT, SparsityMode.LAYER
METHODS = {m.name: m for m in (
    Method('normal', _channels(N, 'min_keep', False), ('percent', 'min_keep', 'rank', 'round'),
           sparsity=N, doc=DOCS['normal']),
    Method('regular', _channels(N, 'min_keep', False), ('percent', 'min_keep', 'rank', 'round'),
           sparsity=N, defaults={'round': 8}, doc=DOCS['regular']),
    Method('shortcut', _channels(S, 'min_keep', False), ('percent', 'min_keep', 'rank', 'round'),
           sparsity=S, doc=DOCS['shortcut']),
    Method('slim', _channels(S, 'layer_keep', True), ('percent', 'layer_keep', 'rank', 'round'),
           sparsity=S, doc=DOCS['slim']),
    Method('l1', _channels(S, 'layer_keep', True, 'l1'), ('percent', 'layer_keep', 'rank', 'round'),
           sparsity=S, defaults={'rank': 'layer', 'layer_keep': 0.25}, doc=DOCS['l1']),
    Method('search', _search, ('keep_bflops', 'images', 'calib', 'layer_keep', 'round'),
           sparsity=S, defaults={'layer_keep': 0.25, 'round': 8}, doc=DOCS['search']),
    Method('layer', _layers, ('shortcuts',), sparsity=L, doc=DOCS['layer']),
    Method('layer_channel', _layer_channels,
           ('percent', 'shortcuts', 'layer_keep', 'rank', 'round'), sparsity=S,
           doc=DOCS['layer_channel']),
    Method('cfg', _cfg, ('round',), sparsity=S, doc=DOCS['cfg']),
)}
