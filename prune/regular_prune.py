"""Regular pruning: normal pruning with every kept channel count a multiple of --round (8).

Hardware runs convolutions in blocks of channels (tensor cores, NPU lanes, FPGA PEs), so 37
channels cost what 40 do; rounding up keeps the extra accuracy for free. The channels kept are the
ones with the largest |gamma|."""
import sys
from pathlib import Path

if __package__ in (None, ''):  # run as a file, not with -m: import from the repo root
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from prune.masks import channel_plan
from prune.runner import parse_script_args, prune_and_report
from utils.cli import friendly_errors


def select(model, percent=0.5, round_to=8, min_keep=0.0, rank='global'):
    return channel_plan(model, mode=0, percent=percent, min_keep=min_keep, round_to=round_to,
                        rank=rank)


def run(percent=0.5, round=8, min_keep=0.0, rank='global', **kw):  # noqa: A002 (the flag)
    return prune_and_report('regular', f'{percent}',
                            lambda m: select(m, percent, round, min_keep, rank), **kw)


def parse_opt(argv=None):
    return parse_script_args(__doc__, ['percent', 'round', 'min_keep', 'rank'], argv)


@friendly_errors
def main(argv=None):
    run(**vars(parse_opt(argv)))


if __name__ == '__main__':
    main()
