"""Layer pruning: drop the --shortcuts N residual blocks whose first conv matters least.

A block ``[conv, conv, shortcut from=-3]`` is ranked by the mean |gamma| of its first conv
(sparse-train with ``--prune 2``); dropping it leaves the residual stream as it was, and routes
that pointed past it are renumbered. Depth falls, so latency falls even where channel pruning
barely helps (GPUs at small batch)."""
from prune.methods import METHODS
from prune.runner import run_method, script_main

select = METHODS['layer'].plan


def run(**kw):
    return run_method('layer', **kw)


main = script_main('layer', __doc__)

if __name__ == '__main__':
    main()
