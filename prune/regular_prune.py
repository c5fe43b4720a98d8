"""Regular pruning: normal pruning with every kept channel count a multiple of --round (8).

Hardware runs convolutions in blocks of channels (tensor cores, NPU lanes, FPGA PEs), so 37
channels cost what 40 do; rounding up keeps the extra accuracy for free. The channels kept are the
ones with the largest |gamma|."""
from prune.methods import METHODS
from prune.runner import run_method, script_main

select = METHODS['regular'].plan


def run(**kw):
    return run_method('regular', **kw)


main = script_main('regular', __doc__)

if __name__ == '__main__':
    main()
