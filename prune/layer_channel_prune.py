"""Layer-channel pruning: slim pruning's channels, then layer pruning's blocks, in one cut.

Masks come from slim pruning (``--percent --layer_keep``), blocks from layer pruning
(``--shortcuts``), both ranked on the same sparse-trained gammas (``train.py -sr --prune 1``)."""
import sys
from pathlib import Path

if __package__ in (None, ''):  # run as a file, not with -m: import from the repo root
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from prune.masks import channel_plan, layer_plan
from prune.runner import parse_script_args, prune_and_report
from utils.cli import friendly_errors


def select(model, percent=0.5, shortcuts=2, layer_keep=0.01, rank='global'):
    plan = channel_plan(model, mode=1, percent=percent, min_keep=layer_keep, clamp=True,
                        rank=rank)
    plan.dropped = layer_plan(model, shortcuts).dropped
    return plan


def run(percent=0.5, shortcuts=2, layer_keep=0.01, rank='global', **kw):
    return prune_and_report('layer_channel', f'{percent}_shortcuts{shortcuts}',
                            lambda m: select(m, percent, shortcuts, layer_keep, rank), **kw)


def parse_opt(argv=None):
    return parse_script_args(__doc__, ['percent', 'shortcuts', 'layer_keep', 'rank'], argv)


@friendly_errors
def main(argv=None):
    run(**vars(parse_opt(argv)))


if __name__ == '__main__':
    main()
