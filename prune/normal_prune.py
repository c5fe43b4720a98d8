"""Normal pruning: one global |gamma| threshold over the convs whose channels nothing else shares.

Convs tied to shortcut chains, SE or depthwise convs keep all channels (sparse-train with
``--prune 0``). Too high a ``--percent`` (some layer would keep fewer than ``--min-keep``) is an
error that names the highest percent that works."""
from prune.methods import METHODS
from prune.runner import run_method, script_main

select = METHODS['normal'].plan


def run(**kw):
    return run_method('normal', **kw)


main = script_main('normal', __doc__)

if __name__ == '__main__':
    main()
