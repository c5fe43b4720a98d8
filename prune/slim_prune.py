"""Slim pruning: shortcut pruning with a per-layer floor instead of an error.

Every conv, shortcut-tied ones included, is ranked by |gamma| against one global threshold; chains
keep the union of their members' channels; a layer that would fall below ``--layer_keep`` of its
channels keeps its best ones instead. The usual choice after ``train.py -sr --prune 1``."""
import sys
from pathlib import Path

if __package__ in (None, ''):  # run as a file, not with -m: import from the repo root
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from prune.masks import channel_plan
from prune.runner import parse_script_args, prune_and_report
from utils.cli import friendly_errors


def select(model, percent=0.5, layer_keep=0.01, rank='global', round=1):  # noqa: A002
    return channel_plan(model, mode=1, percent=percent, min_keep=layer_keep, clamp=True,
                        rank=rank, round_to=round)


def run(percent=0.5, layer_keep=0.01, rank='global', round=1, **kw):  # noqa: A002 (the flag)
    return prune_and_report('slim', f'{percent}',
                            lambda m: select(m, percent, layer_keep, rank, round), **kw)


def parse_opt(argv=None):
    return parse_script_args(__doc__, ['percent', 'layer_keep', 'rank', 'round'], argv,
                             defaults={'round': 1})


@friendly_errors
def main(argv=None):
    run(**vars(parse_opt(argv)))


if __name__ == '__main__':
    main()
