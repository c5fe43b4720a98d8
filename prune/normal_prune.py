"""Normal pruning: one global |gamma| threshold over the convs whose channels nothing else shares.

Convs tied to shortcut chains, SE or depthwise convs keep all channels (sparse-train with
``--prune 0``). Too high a ``--percent`` (some layer would keep fewer than ``--min-keep``) is an
error that names the highest percent that works."""
import sys
from pathlib import Path

if __package__ in (None, ''):  # run as a file, not with -m: import from the repo root
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from prune.masks import channel_plan
from prune.runner import parse_script_args, prune_and_report
from utils.cli import friendly_errors


def select(model, percent=0.5, min_keep=0.0, rank='global'):
    return channel_plan(model, mode=0, percent=percent, min_keep=min_keep, rank=rank)


def run(percent=0.5, min_keep=0.0, rank='global', **kw):
    return prune_and_report('normal', f'{percent}', lambda m: select(m, percent, min_keep, rank),
                            **kw)


def parse_opt(argv=None):
    return parse_script_args(__doc__, ['percent', 'min_keep', 'rank'], argv)


@friendly_errors
def main(argv=None):
    run(**vars(parse_opt(argv)))


if __name__ == '__main__':
    main()
