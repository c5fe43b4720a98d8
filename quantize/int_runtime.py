"""Runs quantize/export_int.py's integer model on images: integers in, integers out.

    python3 -m quantize.int_runtime --weights runs/int/exp/model_int.json --source img.jpg --dump d
    python3 test.py --weights runs/int/exp/model_int.json       # mAP through this runtime

Every layer computes exactly what the manifest specifies (quantize/export_int.py's docstring):
int64 accumulators, requantization by quantize/fixed_point.py's integer multiply and rounding
shift, saturation. The convolutions' sums of products go through a float64 convolution: every
product and every partial sum is an integer below 2^53 (the exporter checks each layer's
worst-case accumulator), and float64 represents such integers exactly, so the result is the
exact integer sum whatever order the GEMM adds in. The exported C code (export.py --format c)
computes the same integers bit for bit.

``--dump DIR`` writes every layer's integer output for one image as ``<index>_<type>.npy`` and
raw little-endian ``.bin`` in the format's width (int8, int16), with the image's integers as
``input.npy``: what a hardware bring-up compares against.
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from quantize.fixed_point import requantize
from quantize.formats import WIDTH
from quantize.int_schema import Bad, validate
from utils.cli import friendly_errors
from utils.datasets import DataError, read_image
from utils.errors import ToolkitError
from utils.files import atomic_path, atomic_write_bytes, whole_or_none
from utils.log import LOGGER
from utils.options import Parser, image_size

FORMAT = 'yolo-int/2'


class IntModelError(ToolkitError, ValueError):
    """An integer model that cannot be read (the message names the file)."""


def manifest_path(path):
    path = Path(path)
    return path if path.suffix == '.json' else path.with_name(path.name + '.json')


def load(path):
    """(manifest, arrays) from ``<stem>_int.json`` (or the stem) and its npz beside it."""
    path = manifest_path(path)
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise IntModelError(f'{path}: not a readable integer-model manifest ({e})') from None
    if not isinstance(manifest, dict) or manifest.get('format') != FORMAT:
        found = manifest.get('format') if isinstance(manifest, dict) else type(manifest).__name__
        raise IntModelError(f'{path}: expected format {FORMAT} (quantize/export_int.py), got '
                            f'{found!r}')
    missing = [k for k in ('cfg', 'number_format', 'input', 'layers', 'outputs')
               if k not in manifest]
    if missing:
        raise IntModelError(f"{path}: missing {', '.join(missing)} (not written by "
                            'quantize/export_int.py, or cut)')
    npz = path.with_suffix('.npz')
    try:
        with np.load(npz, allow_pickle=False) as f:
            arrays = dict(f)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise IntModelError(f'{npz}: cannot read the integer tensors ({e})') from None
    try:
        validate(manifest, arrays)
    except Bad as e:
        raise IntModelError(f'{path}: {e}') from None
    return manifest, arrays


def saturate(r, p):
    return np.clip(r + p['zero_point'], p['qmin'], p['qmax'])


def quantize_image(pixels, manifest):
    """uint8 pixels (n, 3, h, w) -> the first layer's input integers."""
    p = manifest['input']
    return saturate(requantize(pixels.astype(np.int64), p['m'], p['n']), p)


def accumulate(x, e, arrays):
    """The sum of (x - zero point) * w over each window: int64 (n, c, h, w)."""
    w = torch.from_numpy(arrays[e['weight']].astype(np.float64))
    xt = torch.from_numpy((x - e['in']['zero_point']).astype(np.float64))
    acc = F.conv2d(xt, w, None, e['stride'], e['pad'], e['dilation'], e['groups'])
    return acc.numpy().astype(np.int64)  # whole numbers already


def rescaled(acc, arrays, r):
    """requantize with channel c's M, n and B."""
    m, n, b = (arrays[r[k]][:, None, None] for k in 'mnb')
    return requantize(acc, m, n, b)


def conv(x, e, arrays):
    acc = accumulate(x, e, arrays)
    r = rescaled(acc, arrays, e['requant'])
    if e['activation'] == 'leaky':  # r < 0 exactly where leaky's negative side rounds apart
        r = np.where(r < 0, rescaled(acc, arrays, e['requant_neg']), r)
    elif e['activation'] == 'relu':
        r = np.maximum(r, 0)
    return saturate(r, e['out'])


def shortcut(inputs, e, arrays):
    ms = arrays[e['multipliers']]
    total = sum((q - p['zero_point']) * int(m) for q, p, m in zip(inputs, e['in'], ms))
    return saturate(requantize(total, 1, e['shift']), e['out'])


def maxpool(x, e):
    left, right, top, bottom = e['pad']
    low = np.iinfo(np.int64).min
    x = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=low)
    k, s = e['size'], e['stride']
    win = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::s, ::s]
    return win.max((-2, -1))


def route(outs, e):
    parts = []
    for j in e['from']:
        t = outs[j]
        c = t.shape[1] // e['groups']
        parts.append(t[:, e['group_id'] * c:(e['group_id'] + 1) * c])
    return np.concatenate(parts, 1)


def step(e, x, outs, arrays):
    """One layer: x is the previous layer's output, outs every earlier layer's (by index)."""
    kind = e['type']
    if kind == 'conv':
        return conv(x, e, arrays)
    if kind == 'shortcut':
        return shortcut([outs[j] for j in e['from']], e, arrays)
    if kind == 'route':
        return route(outs, e)
    if kind == 'upsample':
        return x.repeat(e['stride'], 2).repeat(e['stride'], 3)
    if kind == 'maxpool':
        return maxpool(x, e)
    return x  # yolo, seg: the head's integers are the output


def later_uses(manifest):
    """The layers whose outputs a route, a shortcut or the model's outputs read."""
    keep = set(manifest['outputs'])
    for e in manifest['layers']:
        if e['type'] in ('route', 'shortcut'):
            keep.update(e['from'])
    return keep


def run(manifest, arrays, pixels, keep_all=False):
    """pixels: uint8 (n, 3, h, w). Returns {layer: integers} for the outputs (every layer's with
    keep_all) and the image's integers under 'input'."""
    x = quantize_image(pixels, manifest)
    keep = later_uses(manifest)
    outs = {'input': x}
    for e in manifest['layers']:
        x = step(e, x, outs, arrays)
        if keep_all or e['index'] in keep:
            outs[e['index']] = x
    return outs


def image_pixels(path, img_size):
    """An image file as detect.py feeds it: letterboxed to img_size, RGB, (1, 3, h, w) uint8."""
    from utils.sources import image_problem, prepare

    img = read_image(path)
    problem = image_problem(img)
    if problem:
        raise DataError(f'{path}: {problem}')
    return prepare(img, img_size)[0][None]


def layer_names(manifest):
    return {e['index']: f"{e['index']:03d}_{e['type']}" for e in manifest['layers']}


def dump(manifest, outs, out_dir):
    """Each layer's integers of one image as .npy and raw little-endian .bin; returns the count."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    width = WIDTH[manifest['number_format']]
    names = {'input': 'input', **layer_names(manifest)}
    files = [out_dir / f'{names[key]}{suffix}' for key in outs for suffix in ('.npy', '.bin')]
    with whole_or_none(files):  # a failed dump leaves no tensors that look like a whole set
        for key, t in outs.items():
            a = t[0].astype(width)
            with atomic_path(out_dir / f'{names[key]}.npy') as tmp:
                np.save(tmp, a)
            atomic_write_bytes(out_dir / f'{names[key]}.bin',
                               a.astype(a.dtype.newbyteorder('<')).tobytes())
    return len(outs)


def check_dump_folder(out_dir):
    """A dump goes into a new or empty folder: layer files of another run beside this one's
    would read as one dump."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise IntModelError(f'--dump {out_dir}: not a folder')
    if out_dir.is_dir() and any(not p.name.startswith('.') for p in out_dir.iterdir()):
        raise IntModelError(f'--dump {out_dir}: holds files already (an earlier dump?); give a '
                            'new or empty folder')


def run_cli(weights='', source='', img_size=None, dump_dir=''):
    check_dump_folder(dump_dir)
    manifest, arrays = load(weights)
    if img_size is None:
        from models.cfg import load_blocks

        img_size = load_blocks(manifest['cfg'])[0].get('height')
    pixels = image_pixels(source, img_size)
    outs = run(manifest, arrays, pixels, keep_all=True)
    n = dump(manifest, outs, dump_dir)
    LOGGER.info(f"{source}: {n} integer tensors ({manifest['number_format']}) written to "
                f'{dump_dir}')


def parser():
    p = Parser(prog='quantize/int_runtime.py', description=__doc__.splitlines()[0])
    p.add_argument('--weights', required=True, help='an integer model: <stem>_int.json')
    p.add_argument('--source', required=True, help='one image')
    p.add_argument('--img-size', type=image_size, default=None, help="default: the cfg's height")
    p.add_argument('--dump', dest='dump_dir', required=True,
                   help='folder for every layer\'s integers (.npy and .bin)')
    return p


@friendly_errors
def main(argv=None):
    run_cli(**vars(parser().parse_args(argv)))


if __name__ == '__main__':
    main()
