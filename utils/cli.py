"""Shared command-line behaviour: known errors become one line on stderr and exit code 1."""
import functools
import sys

from models.cfg import CfgError
from models.weights import WeightsError
from prune.surgery import PruneError
from utils.datasets import DataError
from utils.torch_utils import DeviceError

KNOWN_ERRORS = (CfgError, WeightsError, DataError, DeviceError, PruneError, FileNotFoundError)


def friendly_errors(main):
    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except KNOWN_ERRORS as e:
            print(f'error: {e}', file=sys.stderr)
            sys.exit(1)
    return wrapper
