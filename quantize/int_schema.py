"""The integer model's manifest checked whole when it is loaded: types, ranges, references, the
tensors' dtypes and shapes against the cfg it carries. A manifest that quantize/export_int.py did
not write as it is (edited, cut, of another model) is refused with one line naming the layer and
key, before a single image runs through it.
"""
from __future__ import annotations

import functools
import math

import numpy as np

from models.darknet import Darknet
from models.layers import (ConvBNAct, Dropout, MaxPool, Route, SegmentHead, Shortcut, Upsample,
                           YoloLayer)
from quantize.formats import FORMATS
from utils.errors import ToolkitError

ACTIVATIONS = ('linear', 'relu', 'leaky')
MAX_SHIFT = 62        # requantize's shifts are int64 arithmetic
MAX_BITS = 62         # accumulator bits the runtime holds exactly (export_int keeps them <= 53)
LIMIT = 2 ** 15       # 16-bit formats at most
KINDS = {'conv': ConvBNAct, 'shortcut': Shortcut, 'route': (Route, Dropout), 'upsample': Upsample,
         'maxpool': MaxPool, 'yolo': YoloLayer, 'seg': SegmentHead}


class Bad(ToolkitError, ValueError):
    """Raised with the place (layer and key) and what is wrong; the loader adds the file."""


def _integer(d, key, where, low=-2 ** 62, high=2 ** 62):
    value = d.get(key) if isinstance(d, dict) else None
    if isinstance(value, bool) or not isinstance(value, int):
        raise Bad(f'{where}: {key} must be a whole number, got {value!r}')
    if not low <= value <= high:
        raise Bad(f'{where}: {key}={value} is out of range {low}..{high}')
    return value


def _positive(d, key, where):
    value = d.get(key) if isinstance(d, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not math.isfinite(value) or value <= 0:
        raise Bad(f'{where}: {key} must be a number above 0, got {value!r}')
    return float(value)


def _qparams(d, key, where):
    p = d.get(key) if isinstance(d, dict) else None
    where = f'{where} {key}'
    if not isinstance(p, dict):
        raise Bad(f'{where}: expected scale, zero_point, qmin, qmax, got {p!r}')
    _positive(p, 'scale', where)
    low = _integer(p, 'qmin', where, -LIMIT, LIMIT - 1)
    high = _integer(p, 'qmax', where, -LIMIT, LIMIT - 1)
    if low >= high:
        raise Bad(f'{where}: qmin {low} must be below qmax {high}')
    _integer(p, 'zero_point', where, low, high)
    return p


def _array(arrays, name, where, shape, integers=True):
    if not isinstance(name, str) or name not in arrays:
        raise Bad(f'{where}: the tensor {name!r} is not in the npz')
    a = arrays[name]
    if integers and a.dtype.kind not in 'iu':
        raise Bad(f'{where}: tensor {name} holds {a.dtype}, not integers')
    if not integers and a.dtype.kind != 'f':
        raise Bad(f'{where}: tensor {name} holds {a.dtype}, not floats')
    if tuple(a.shape) != tuple(shape):
        raise Bad(f'{where}: tensor {name} has shape {tuple(a.shape)}, the cfg needs '
                  f'{tuple(shape)}')
    if not integers and not np.isfinite(a).all():
        raise Bad(f'{where}: tensor {name} holds NaN or infinity')
    return a


def _multiplier(e, key, where, arrays, n):
    r = e.get(key)
    if not isinstance(r, dict) or set(r) != {'m', 'n', 'b'}:
        raise Bad(f'{where}: {key} must name the m, n and b tensors, got {r!r}')
    for part in 'mnb':
        _array(arrays, r[part], f'{where} {key}.{part}', (n,))
    shifts = arrays[r['n']]
    if shifts.min(initial=0) < 0 or shifts.max(initial=0) > MAX_SHIFT:
        raise Bad(f'{where}: {key} shifts must be in 0..{MAX_SHIFT}')


def _froms(e, index, where, many=True):
    froms = e.get('from')
    froms = froms if many else [froms]
    if not isinstance(froms, list) or not froms or \
            any(isinstance(j, bool) or not isinstance(j, int) or not 0 <= j < index
                for j in froms):
        raise Bad(f'{where}: from must name earlier layers (0..{index - 1}), got '
                  f'{e.get("from")!r}')
    return froms


def _conv(e, m, where, arrays):
    c = m.conv
    for key, want in (('stride', c.stride[0]), ('pad', c.padding[0]),
                      ('dilation', c.dilation[0]), ('groups', c.groups),
                      ('size', c.kernel_size[0])):
        if _integer(e, key, where, 0 if key == 'pad' else 1) != want:
            raise Bad(f'{where}: {key}={e[key]}, the cfg says {want}')
    if e.get('activation') not in ACTIVATIONS:
        raise Bad(f"{where}: activation {e.get('activation')!r} is not one the runtime runs "
                  f"({', '.join(ACTIVATIONS)})")
    _integer(e, 'acc_bits', where, 1, MAX_BITS)
    _qparams(e, 'in', where)
    _qparams(e, 'out', where)
    n = c.out_channels
    _array(arrays, e.get('weight'), f'{where} weight', tuple(c.weight.shape))
    _array(arrays, e.get('weight_scale'), f'{where} weight_scale', (n,), integers=False)
    _multiplier(e, 'requant', where, arrays, n)
    if e['activation'] == 'leaky':
        slope = e.get('slope')
        if isinstance(slope, bool) or not isinstance(slope, (int, float)) or \
                not 0 < slope < 1:
            raise Bad(f'{where}: a leaky slope in (0, 1) is needed, got {slope!r}')
        _multiplier(e, 'requant_neg', where, arrays, n)


def _entry(e, i, m, arrays):
    where = f'layer {i}'
    if not isinstance(e, dict):
        raise Bad(f'{where}: expected an object, got {type(e).__name__}')
    kind = e.get('type')
    if not isinstance(kind, str) or kind not in KINDS:
        raise Bad(f"{where}: unknown layer type {kind!r} ({', '.join(KINDS)})")
    if not isinstance(m, KINDS[kind]):
        raise Bad(f'{where}: the manifest says {kind}, the cfg has {type(m).__name__}')
    if _integer(e, 'index', where) != i:
        raise Bad(f'{where}: index {e["index"]} out of order')
    if kind == 'conv':
        _conv(e, m, where, arrays)
    elif kind == 'shortcut':
        froms = _froms(e, i, where)
        ins = e.get('in')
        if not isinstance(ins, list) or len(ins) != len(froms):
            raise Bad(f'{where}: in must hold one range per input ({len(froms)})')
        for k in range(len(ins)):
            _qparams({'in': ins[k]}, 'in', f'{where} input {k}')
        _qparams(e, 'out', where)
        _array(arrays, e.get('multipliers'), f'{where} multipliers', (len(froms),))
        _integer(e, 'shift', where, 0, MAX_SHIFT)
    elif kind == 'route':
        froms = _froms(e, i, where)
        groups = _integer(e, 'groups', where, 1, 1024)
        _integer(e, 'group_id', where, 0, groups - 1)
        if isinstance(m, Dropout) and (froms != [i - 1] or groups != 1):
            raise Bad(f'{where}: a dropout is the identity: a route from layer {i - 1} alone')
    elif kind == 'upsample':
        _integer(e, 'stride', where, 1, 64)
    elif kind == 'maxpool':
        _integer(e, 'size', where, 1, 64)
        _integer(e, 'stride', where, 1, 64)
        pad = e.get('pad')
        if not isinstance(pad, list) or len(pad) != 4 or \
                any(isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 64
                    for v in pad):
            raise Bad(f'{where}: pad must be four whole numbers (left, right, top, bottom)')
    else:
        _froms(e, i, where, many=False)


@functools.lru_cache(maxsize=4)
def _network(cfg):
    """The float network a cfg text builds (read only here: for the shapes it implies)."""
    return Darknet(cfg)


GRID = ('scale', 'zero_point', 'qmin', 'qmax')


def _grid(layers, j, image):
    """The output grid layer j writes (routes, pass-throughs and heads move integers)."""
    while j != 'input' and 'out' not in layers[j]:
        e = layers[j]
        j = e['from'][0] if e['type'] == 'route' else (j - 1 if j else 'input')
    p = image if j == 'input' else layers[j]['out']
    return tuple(p[k] for k in GRID)


def _links(layers, image):
    """Every layer reads its inputs on the grid they were written on."""
    for e in layers:
        i = e['index']
        if e['type'] == 'conv':
            want = _grid(layers, i - 1, image) if i else tuple(image[k] for k in GRID)
            if tuple(e['in'][k] for k in GRID) != want:
                raise Bad(f'layer {i} in: {e["in"]} is not the grid its input is written on')
        elif e['type'] == 'shortcut':
            for j, p in zip(e['from'], e['in']):
                if tuple(p[k] for k in GRID) != _grid(layers, j, image):
                    raise Bad(f'layer {i} in: the range of input {j} is not the one layer {j} '
                              'writes')


def _close(got, want, where, what):
    if not np.allclose(got, want, rtol=1e-4, atol=0):
        worst = float(np.max(np.abs(got / want - 1)))
        raise Bad(f'{where}: {what} do not match the scales (off by {worst:.2g}, relative)')


def _scales(layers, arrays):
    """Each requantization multiplier M / 2^n is the ratio of the scales it converts between."""
    for e in layers:
        where = f'layer {e["index"]}'
        if e['type'] == 'conv':
            real = e['in']['scale'] * arrays[e['weight_scale']] / e['out']['scale']
            r = e['requant']
            got = arrays[r['m']] / np.exp2(arrays[r['n']].astype(np.float64))
            _close(got, real, where, 'requant multipliers')
            if e['activation'] == 'leaky':
                r = e['requant_neg']
                got = arrays[r['m']] / np.exp2(arrays[r['n']].astype(np.float64))
                _close(got, real * e['slope'], where, 'requant_neg multipliers')
        elif e['type'] == 'shortcut':
            real = np.array([p['scale'] for p in e['in']]) / e['out']['scale']
            _close(arrays[e['multipliers']] / 2.0 ** e['shift'], real, where, 'multipliers')


def validate(manifest, arrays):
    """Raise Bad naming the first thing in the manifest (or its tensors) the runtime cannot run
    as written."""
    if manifest.get('number_format') not in FORMATS:
        raise Bad(f"number_format {manifest.get('number_format')!r} is not one of "
                  f"{', '.join(FORMATS)}")
    if not isinstance(manifest.get('cfg'), str):
        raise Bad('cfg must be the network\'s cfg text')
    try:
        model = _network(manifest['cfg'])
    except ToolkitError as e:
        raise Bad(f'its cfg: {e}') from None
    layers = manifest.get('layers')
    if not isinstance(layers, list) or len(layers) != len(model.module_list):
        count = len(layers) if isinstance(layers, list) else type(layers).__name__
        raise Bad(f'layers: the cfg has {len(model.module_list)} layers, the manifest {count}')
    ip = manifest.get('input')
    _qparams({'input': ip}, 'input', 'the image')
    _integer(ip, 'm', 'the image input', 1, 2 ** 62)
    _integer(ip, 'n', 'the image input', 0, MAX_SHIFT)
    for i, (e, m) in enumerate(zip(layers, model.module_list)):
        _entry(e, i, m, arrays)
    _links(layers, ip)
    _scales(layers, arrays)
    real = 1 / (255 * ip['scale'])
    if not math.isclose(ip['m'] / 2.0 ** ip['n'], real, rel_tol=1e-2):
        raise Bad(f"the image input: m / 2^n = {ip['m'] / 2.0 ** ip['n']:.6g} is not "
                  f'1 / (255 scale) = {real:.6g}')
    heads = [e['from'] for e in layers if e['type'] in ('yolo', 'seg')]
    if manifest.get('outputs') != heads:
        raise Bad(f"outputs must be the layers the heads read, {heads}, got "
                  f"{manifest.get('outputs')!r}")
