"""Shortcut pruning: normal pruning that also prunes the convs tied by shortcut chains.

A chain (every conv whose output is added into one residual stream, and SE / depthwise ties) gets
one mask: a channel stays if any member's |gamma| is above the threshold. Sparse-train with
``--prune 1``. Too high a ``--percent`` is an error naming the highest percent that works."""
from prune.methods import METHODS
from prune.runner import run_method, script_main

select = METHODS['shortcut'].plan


def run(**kw):
    return run_method('shortcut', **kw)


main = script_main('shortcut', __doc__)

if __name__ == '__main__':
    main()
