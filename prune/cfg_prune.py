"""Cfg pruning: carry out lightNet's per-layer ``pruning=<fraction>`` keys.

Each [convolutional] with ``pruning=f`` loses that share of its filters, those with the smallest
L1 norm of their weights; convs tied by a shortcut chain or a depthwise conv keep one mask (the
largest fraction a member asks for), and layers whose width cannot change are listed and left
whole. Writes the reduced cfg (without the carried-out keys) and weights, like the other prune
scripts: ``python3 -m prune.cfg_prune --cfg C --weights W``."""
from prune.methods import METHODS
from prune.runner import run_method, script_main

select = METHODS['cfg'].plan


def run(**kw):
    return run_method('cfg', **kw)


main = script_main('cfg', __doc__)

if __name__ == '__main__':
    main()
