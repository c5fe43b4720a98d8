"""Layer pruning: drop the --shortcuts N residual blocks whose first conv matters least.

A block ``[conv, conv, shortcut from=-3]`` is ranked by the mean |gamma| of its first conv
(sparse-train with ``--prune 2``); dropping it leaves the residual stream as it was, and routes
that pointed past it are renumbered. Depth falls, so latency falls even where channel pruning
barely helps (GPUs at small batch)."""
import sys
from pathlib import Path

if __package__ in (None, ''):  # run as a file, not with -m: import from the repo root
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from prune.masks import layer_plan
from prune.runner import parse_script_args, prune_and_report
from utils.cli import friendly_errors


def select(model, shortcuts=2):
    return layer_plan(model, shortcuts)


def run(shortcuts=2, **kw):
    return prune_and_report('layer', f'shortcuts{shortcuts}', lambda m: select(m, shortcuts), **kw)


def parse_opt(argv=None):
    return parse_script_args(__doc__, ['shortcuts'], argv)


@friendly_errors
def main(argv=None):
    run(**vars(parse_opt(argv)))


if __name__ == '__main__':
    main()
