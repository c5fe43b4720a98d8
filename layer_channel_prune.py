"""`python3 layer_channel_prune.py`, as the reference toolkit writes it: the prune command with
its method fixed (`python3 -m prune --method layer_channel`)."""
from prune.cli import method_main

if __name__ == '__main__':
    method_main('layer_channel')()
