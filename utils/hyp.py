"""Training hyperparameters (--hyp): YAML files with one fixed set of keys, data/hyp.scratch.yaml's.

Every shipped hyp file defines every key, so a file missing one, or with a key nobody reads (a
typo), is an error naming the file and the key rather than a KeyError deep in training or a
setting silently ignored. A dict instead of a path overrides data/hyp.scratch.yaml's values.
"""
from __future__ import annotations

import math

from pathlib import Path

import yaml

from utils.errors import OptionError
from utils.options import closest

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_HYP = ROOT / 'data' / 'hyp.scratch.yaml'
CHOICES = {'optimizer': ('adam', 'sgd'), 'schedule': ('cosine', 'step'),
           'iou_loss': ('giou', 'ciou')}


class HypError(OptionError):
    """A hyp file that cannot be trained with; the message names the file and the key."""
    exit_code = 1


def read_yaml(path) -> dict:
    path = Path(path)
    try:
        values = yaml.safe_load(path.read_text())
    except OSError as e:
        raise HypError(f'{path}: cannot read hyp file ({e.strerror})') from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise HypError(f'{path}: not a YAML file ({type(e).__name__})') from None
    if not isinstance(values, dict):
        raise HypError(f'{path}: expected key: value lines')
    return values


def load_hyp(hyp=None) -> dict:
    """A hyp YAML path, or a dict of overrides on top of data/hyp.scratch.yaml; checked."""
    if hyp is None or hyp == '':
        hyp = DEFAULT_HYP
    if isinstance(hyp, dict):
        values, source = read_yaml(DEFAULT_HYP) | hyp, 'hyp overrides'
    else:
        values, source = read_yaml(hyp), str(hyp)
    check(values, source)
    return values


def check(values, source):
    if not isinstance(values, dict):
        raise HypError(f'{source}: expected key: value pairs, got {type(values).__name__}')
    keys = set(read_yaml(DEFAULT_HYP))
    missing = sorted(keys - set(values))
    if missing:
        raise HypError(f"{source}: missing {', '.join(missing)} (every key of "
                       f'{DEFAULT_HYP.relative_to(ROOT)} is needed)')
    for key in values:
        if key not in keys:
            raise HypError(f"{source}: unknown key '{key}'{closest(key, keys)}")
    for key, allowed in CHOICES.items():
        if values[key] not in allowed:
            raise HypError(f"{source}: {key}: {values[key]} is not one of {', '.join(allowed)}")
    for key in keys - set(CHOICES):
        if not isinstance(values[key], (int, float)) or isinstance(values[key], bool):
            raise HypError(f'{source}: {key}: {values[key]!r} is not a number')
        if not math.isfinite(values[key]):
            raise HypError(f'{source}: {key}: {values[key]} is not a finite number')
    for key in keys - set(CHOICES):  # gains, rates, probabilities, ranges: none below 0
        if values[key] < 0:
            raise HypError(f'{source}: {key}: {values[key]} must be 0 or more')
    if values['lr0'] <= 0 or values['nbs'] < 1:
        raise HypError(f'{source}: lr0 must be > 0 and nbs >= 1')
    for key in ('momentum', 'warmup_momentum'):  # SGD's momentum, Adam's beta1
        if not 0 <= values[key] < 1:
            raise HypError(f'{source}: {key}: {values[key]} must be in [0, 1)')
