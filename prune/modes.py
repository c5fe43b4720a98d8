"""Which channels sparse training pushes (train.py --prune N): the numbers users type, the names
the code tests."""
from enum import IntEnum


class SparsityMode(IntEnum):
    NORMAL = 0    # single-conv channel spaces (normal_prune, regular_prune)
    SHORTCUT = 1  # also the spaces shortcuts, SE and depthwise convs tie together (shortcut, slim)
    LAYER = 2     # the first conv of each residual block (layer_prune)
