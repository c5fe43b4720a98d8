"""Layer-channel pruning: slim pruning's channels, then layer pruning's blocks, in one cut.

Masks come from slim pruning (``--percent --layer_keep``), blocks from layer pruning
(``--shortcuts``), both ranked on the same sparse-trained gammas (``train.py -sr --prune 1``)."""
from prune.methods import METHODS
from prune.runner import run_method, script_main

select = METHODS['layer_channel'].plan


def run(**kw):
    return run_method('layer_channel', **kw)


main = script_main('layer_channel', __doc__)

if __name__ == '__main__':
    main()
