"""A numpy reference runtime for quantize/export_int.py's format: integers in, integers out.

It reads only the manifest and the npz (never the torch model), so a test that compares it with
the fake-quant model checks the format as a fixed-point runtime would execute it.
"""
import json

import numpy as np

ACT = {'linear': lambda y, e: y, 'relu': lambda y, e: np.maximum(y, 0),
       'leaky': lambda y, e: np.where(y < 0, y * e['slope'], y),
       'logistic': lambda y, e: 1 / (1 + np.exp(-y)),
       'swish': lambda y, e: y / (1 + np.exp(-y)),
       'hswish': lambda y, e: y * np.clip(y + 3, 0, 6) / 6,
       'mish': lambda y, e: y * np.tanh(np.log1p(np.exp(y)))}


def load(stem):
    with open(f'{stem}.json') as f:
        manifest = json.load(f)
    return manifest, dict(np.load(f'{stem}.npz'))


def requantize(a, p):
    return np.clip(np.rint(a) + p['zero_point'], p['qmin'], p['qmax']).astype(np.int64)


def conv2d_int(x, w, stride, pad, groups):
    """Integer convolution (int64 accumulation) by sliding windows; x already has zp removed."""
    x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    k = w.shape[-1]
    win = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]
    cin, cout = x.shape[1] // groups, w.shape[0] // groups
    outs = [np.einsum('nchwij,ocij->nohw', win[:, g * cin:(g + 1) * cin],
                      w[g * cout:(g + 1) * cout], optimize=True) for g in range(groups)]
    return np.concatenate(outs, 1)


def conv(x, e, arrays):
    w = arrays[e['weight']].astype(np.int64)
    acc = conv2d_int(x - e['in']['zero_point'], w, e['stride'], e['pad'], e['groups'])
    acc = acc + arrays[e['bias']].astype(np.int64)[None, :, None, None]
    act = ACT[e['activation']]
    if 'multiplier' in e:  # a positive factor passes through leaky/relu/linear
        return requantize(act(acc * arrays[e['multiplier']][None, :, None, None], e), e['out'])
    y = acc * (e['in']['scale'] * arrays[e['weight_scale']])[None, :, None, None]
    return requantize(act(y, e) / e['out']['scale'], e['out'])


def shortcut(inputs, e):
    total = sum((q - p['zero_point']) * p['scale'] for q, p in zip(inputs, e['in']))
    return requantize(total / e['out']['scale'], e['out'])


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


def quantize_input(images, manifest):
    p = manifest['input']
    x = np.clip(np.rint(images / p['scale']) + p['zero_point'], p['qmin'], p['qmax'])
    return x.astype(np.int64)


def step(e, x, outs, arrays):
    """One layer: x is the previous layer's output, outs every earlier layer's."""
    kind = e['type']
    if kind == 'conv':
        return conv(x, e, arrays)
    if kind == 'shortcut':
        return shortcut([outs[j] for j in e['from']], e)
    if kind == 'route':
        return route(outs, e)
    if kind == 'upsample':
        return x.repeat(e['stride'], 2).repeat(e['stride'], 3)
    if kind == 'maxpool':
        return maxpool(x, e)
    return x  # yolo: the head's integers are the output


def run(manifest, arrays, images):
    """images: float (n, 3, h, w) in [0, 1]. Returns every layer's integer output."""
    x = quantize_input(images, manifest)
    outs = []
    for e in manifest['layers']:
        x = step(e, x, outs, arrays)
        outs.append(x)
    return outs
