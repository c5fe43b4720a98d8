"""Slim pruning: shortcut pruning with a per-layer floor instead of an error.

Every conv, shortcut-tied ones included, is ranked by |gamma| against one global threshold; chains
keep the union of their members' channels; a layer that would fall below ``--layer_keep`` of its
channels keeps its best ones instead. The usual choice after ``train.py -sr --prune 1``."""
from prune.methods import METHODS
from prune.runner import run_method, script_main

select = METHODS['slim'].plan


def run(**kw):
    return run_method('slim', **kw)


main = script_main('slim', __doc__)

if __name__ == '__main__':
    main()
