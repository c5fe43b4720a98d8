"""A self-contained C99 project for an integer model (quantize/export_int.py's npz + json).

    python3 export.py --weights runs/ptq/exp/yolov3-mini_ptq_q8_max.pt --format c
    cd runs/export/exp/yolov3-mini_c && cc -O2 -std=c99 -Wall -Werror -o yolo *.c

Writes the integer layer library (quantize/c/yint.c, .h), the weights as const int8/int16
arrays, ``model.c`` (the layers in order, each reading and writing one static arena, no malloc),
``main.c`` (raw image in, raw head integers out) and a README stating the arena size, the weight
bytes and how to build and run it. The program computes what quantize/int_runtime.py computes,
bit for bit, at the one input size it is exported for.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from quantize import int_runtime
from quantize.formats import WIDTH
from utils.errors import ToolkitError

C_DIR = Path(__file__).parent / 'c'
ACT = {'linear': 'YINT_LINEAR', 'relu': 'YINT_RELU', 'leaky': 'YINT_LEAKY'}
C_TYPE = {np.dtype(np.int8): 'int8_t', np.dtype(np.int16): 'int16_t',
          np.dtype(np.int32): 'int32_t', np.dtype(np.int64): 'int64_t'}


class CExportError(ToolkitError, ValueError):
    """A manifest the C layers cannot run."""


def reads(e):
    """The layers (or 'input') whose outputs layer e reads."""
    if e['type'] in ('route', 'shortcut'):
        return list(e['from'])
    return [e['index'] - 1 if e['index'] else 'input']


def shapes(manifest, arrays, img_hw):
    """(c, h, w) of the image's integers and of every layer's output, by running it once."""
    pixels = np.zeros((1, 3, *img_hw), np.uint8)
    outs = int_runtime.run(manifest, arrays, pixels, keep_all=True)
    return {k: v.shape[1:] for k, v in outs.items()}


def buffer_of(manifest):
    """Which tensor holds each layer's output: heads pass their input on, so they share it."""
    owner = {'input': 'input'}
    for e in manifest['layers']:
        i = e['index']
        owner[i] = owner[i - 1] if e['type'] in ('yolo', 'seg') else i
    return owner


def lifetimes(manifest, owner):
    """{buffer: (first, last)} in layer steps ('input' is written at step -1)."""
    n = len(manifest['layers'])
    life = {'input': [-1, 0]}
    for e in manifest['layers']:
        i = e['index']
        life.setdefault(owner[i], [i, i])
        for j in reads(e):
            life[owner[j]][1] = max(life[owner[j]][1], i)
    for j in manifest['outputs']:
        life[owner[j]][1] = n
    return life


def plan_arena(sizes, life, base):
    """Byte offsets (from ``base``) for buffers: larger first, each at the lowest offset clear of
    every placed buffer alive at the same time. Returns ({buffer: offset}, end)."""
    placed, end = {}, base
    for b in sorted(sizes, key=lambda k: -sizes[k]):
        busy = sorted((placed[o], placed[o] + sizes[o]) for o in placed
                      if life[o][0] <= life[b][1] and life[b][0] <= life[o][1])
        offset = base
        for lo, hi in busy:
            if offset + sizes[b] <= lo:
                break
            offset = max(offset, -(-hi // 8) * 8)
        placed[b] = offset
        end = max(end, offset + sizes[b])
    return placed, end


def c_array(name, a):
    """A const array definition (extern linkage: model.c declares it)."""
    a = np.asarray(a).ravel()
    body = ',\n'.join(', '.join(map(str, a[k:k + 24].tolist())) for k in range(0, len(a), 24))
    return f'const {C_TYPE[a.dtype]} {name}[{max(len(a), 1)}] = {{\n{body or "0"}\n}};\n'


TILE_LANES = 256  # yint.h's YINT_LANES


def align16(n):
    """n rounded up to a multiple of 16, as YINT_ALIGN does."""
    return -(-n // 16) * 16


class Writer:
    """model.c and weights.c of one manifest at one input size."""

    def __init__(self, manifest, arrays, img_hw):
        self.manifest, self.arrays = manifest, arrays
        fmt = manifest['number_format']
        self.act = np.dtype(WIDTH[fmt])  # weights and activations alike
        self.acc64 = max(e['acc_bits'] for e in manifest['layers'] if e['type'] == 'conv') > 31
        self.shape = shapes(manifest, arrays, img_hw)
        self.owner = buffer_of(manifest)
        sizes = {b: int(np.prod(self.shape[b])) * self.act.itemsize  # in layer order: the
                 for b in dict.fromkeys(self.owner.values())}     # same input, the same file
        self.tap = 2 if self.act.itemsize == 1 else 4  # x - zero: int16 holds it for 8 bits
        self.scratch = max(self.conv_scratch(e) for e in manifest['layers']
                           if e['type'] == 'conv')
        self.offset, self.arena = plan_arena(sizes, lifetimes(manifest, self.owner),
                                             -(-self.scratch // 8) * 8)

    def conv_scratch(self, e):
        """Bytes yint_conv needs (yint.h's YINT_* macros): four accumulator rows of a tile, then
        the tile's prepared input, cin x stride x stride segments."""
        cin, k, s, d = self.shape[reads(e)[0]][0], e['size'], e['stride'], e['dilation']
        _, oh, ow = self.shape[e['index']]
        reach = (k - 1) * d // s
        pitch = ow + reach
        rows = min(max(TILE_LANES // pitch, 1), oh)
        lanes = align16(rows * pitch)
        seg = align16(lanes + reach * (pitch + 1))
        return 4 * lanes * (8 if self.acc64 else 4) + cin * s * s * seg * self.tap

    def t(self, j):
        return f'T({self.offset[self.owner[j]]})'

    def config_h(self):
        a, acc = C_TYPE[self.act], 'int64_t' if self.acc64 else 'int32_t'
        return (f"/* {self.manifest['number_format']} */\n#ifndef YINT_CONFIG_H\n"
                f'#define YINT_CONFIG_H\n#include <stdint.h>\ntypedef {a} act_t;\n'
                f'typedef {a} wt_t;\ntypedef int{8 * self.tap}_t tap_t;\n'
                f'typedef {acc} acc_t;\n#endif\n')

    def weights_c(self):
        out = ['#include "yint.h"\n']
        for e in self.manifest['layers']:
            if e['type'] != 'conv':
                continue
            i = e['index']
            out.append(c_array(f'yint_w{i}', self.arrays[e['weight']].astype(self.act)))
            for key, r in (('', e['requant']), ('_neg', e.get('requant_neg'))):
                if r:
                    for part, dtype in (('m', np.int32), ('n', np.int8), ('b', np.int64)):
                        out.append(c_array(f'yint_{part}{key}{i}',
                                           self.arrays[r[part]].astype(dtype)))
        return '\n'.join(out)

    def externs(self):
        lines = []
        for e in self.manifest['layers']:
            if e['type'] != 'conv':
                continue
            i = e['index']
            lines.append(f'extern const wt_t yint_w{i}[];')
            for key in ('', '_neg') if 'requant_neg' in e else ('',):
                lines.append(f'extern const int32_t yint_m{key}{i}[];\n'
                             f'extern const int8_t yint_n{key}{i}[];\n'
                             f'extern const int64_t yint_b{key}{i}[];')
        return '\n'.join(lines)

    def conv(self, e):
        i, (c, h, w) = e['index'], self.shape[reads(e)[0]]
        _, oh, ow = self.shape[i]
        neg = '_neg' if 'requant_neg' in e else ''  # linear and relu: never read
        o, p = e['out'], e['in']
        desc = (f'static const yint_conv_t conv{i} = {{yint_w{i}, yint_m{i}, yint_m{neg}{i}, '
                f"yint_b{i}, yint_b{neg}{i}, yint_n{i}, yint_n{neg}{i}, {c}, {self.shape[i][0]}, "
                f"{e['size']}, {e['stride']}, "
                f"{e['pad']}, {e['dilation']}, {e['groups']}, {ACT[e['activation']]}, "
                f"{p['zero_point']}, {o['zero_point']}, {o['qmin']}, {o['qmax']}}};")
        call = (f'yint_conv(&conv{i}, {self.t(reads(e)[0])}, {h}, {w}, {self.t(i)}, {oh}, {ow}, '
                'scratch);')
        return desc, call

    def shortcut(self, e):
        i, k = e['index'], len(e['from'])
        ms = ', '.join(str(int(m)) for m in self.arrays[e['multipliers']])
        zs = ', '.join(str(p['zero_point']) for p in e['in'])
        ins = ', '.join(self.t(j) for j in e['from'])
        o = e['out']
        return (f'{{ const act_t *in[{k}] = {{{ins}}}; static const int z[{k}] = {{{zs}}}; '
                f'static const int32_t m[{k}] = {{{ms}}};\n      '
                f"yint_shortcut(in, z, m, {k}, {e['shift']}, {int(np.prod(self.shape[i]))}L, "
                f"{o['zero_point']}, {o['qmin']}, {o['qmax']}, {self.t(i)}); }}")

    def route(self, e):
        calls, at = [], 0
        for j in e['from']:
            c, h, w = self.shape[j]
            part = c // e['groups'] * h * w
            calls.append(f"yint_copy({self.t(j)} + {e['group_id'] * part}L, {part}L, "
                         f"{self.t(e['index'])} + {at}L);")
            at += part
        return ' '.join(calls)

    def call(self, e):
        i, kind = e['index'], e['type']
        c, h, w = self.shape[i - 1] if i else self.shape['input']
        if kind == 'shortcut':
            return None, self.shortcut(e)
        if kind == 'route':
            return None, self.route(e)
        if kind == 'upsample':
            return None, (f"yint_upsample({self.t(i - 1)}, {c}, {h}, {w}, {e['stride']}, "
                          f'{self.t(i)});')
        if kind == 'maxpool':
            _, oh, ow = self.shape[i]
            left, _, top, _ = e['pad']
            return None, (f"yint_maxpool({self.t(i - 1)}, {c}, {h}, {w}, {e['size']}, "
                          f"{e['stride']}, {left}, {top}, {self.t(i)}, {oh}, {ow});")
        if kind == 'conv':
            return self.conv(e)
        return None, f'/* {kind}: the head reads layer {i - 1} */'

    def model_c(self):
        p = self.manifest['input']
        descs, calls = [], [
            f"yint_input(pixels, YINT_IN_BYTES, {p['m']}, {p['n']}, {p['zero_point']}, "
            f"{p['qmin']}, {p['qmax']}, {self.t('input')});"]
        for e in self.manifest['layers']:
            desc, call = self.call(e)
            if desc:
                descs.append(desc)
            calls.append(f"/* {e['index']} {e['type']} */ {call}")
        heads = '\n'.join(f'    heads[{k}] = {self.t(j)};'
                          for k, j in enumerate(self.manifest['outputs']))
        body = '\n'.join(f'    {c}' for c in calls)
        return (f'#include "model.h"\n\n{self.externs()}\n\n'
                f'static int64_t arena[{-(-self.arena // 8)}];  /* {self.arena} bytes */\n'
                '#define T(offset) ((act_t *)((char *)arena + (offset)))\n\n'
                + '\n'.join(descs) + '\n\nconst long yint_head_size[YINT_HEADS] = {'
                + ', '.join(f'{int(np.prod(self.shape[j]))}L' for j in self.manifest['outputs'])
                + '};\n\nvoid yint_model(const uint8_t *pixels, const act_t **heads)\n{\n'
                '    acc_t *scratch = (acc_t *)arena;\n' + body + '\n' + heads + '\n}\n')

    def model_h(self):
        c, h, w = self.shape['input']
        heads = '\n'.join(f'/* head {k}: layer {j}, {" x ".join(map(str, self.shape[j]))} */'
                          for k, j in enumerate(self.manifest['outputs']))
        return (f'#ifndef YINT_MODEL_H\n#define YINT_MODEL_H\n#include "yint.h"\n\n'
                f'#define YINT_IN_C {c}\n#define YINT_IN_H {h}\n#define YINT_IN_W {w}\n'
                f'#define YINT_IN_BYTES {c * h * w}\n#define YINT_ARENA_BYTES {self.arena}\n'
                f"#define YINT_HEADS {len(self.manifest['outputs'])}\n{heads}\n\n"
                'extern const long yint_head_size[YINT_HEADS];\n'
                'void yint_model(const uint8_t *pixels, const act_t **heads);\n\n#endif\n')

    def weight_bytes(self):
        n = 0
        for e in self.manifest['layers']:
            if e['type'] == 'conv':  # weights; per channel M (4 bytes), n (1) and B (8)
                n += self.arrays[e['weight']].size * self.act.itemsize
                n += sum(self.arrays[r['m']].size * 13 for r in (e['requant'], e.get('requant_neg'))
                         if r)
        return n

    def readme(self, name):
        c, h, w = self.shape['input']
        heads = '\n'.join(f"- head {k}: layer {j}, {' x '.join(map(str, self.shape[j]))}"
                          for k, j in enumerate(self.manifest['outputs']))
        return f"""# {name}: integer {self.manifest['number_format']} model in C99

- input: {c} x {h} x {w} uint8 pixels, RGB, channels first (the letterboxed image)
- arena (activations and the convolutions' tile buffers, static): {self.arena:,} bytes
- weights, biases and multipliers (const): {self.weight_bytes():,} bytes
- accumulators: {'int64' if self.acc64 else 'int32'}; no malloc, no floating point

Build and run:

    cc -O2 -std=c99 -Wall -Werror -o yolo main.c model.c weights.c yint.c
    ./yolo image.raw heads.bin

The convolution kernels (yint.c) are written for the compiler to vectorise at -O2: add the
target's flags (`-march=native` on a PC, `-mcpu=cortex-m7` and the like on a microcontroller)
to use its vector or DSP instructions.

`heads.bin` holds each head's integers ({C_TYPE[self.act]}, little-endian, channels x height x
width), head after head:

{heads}

A head's real values are (q - zero_point) * scale with the scale and zero point of its layer in
the manifest (`_int.json`); the detections decode as the cfg's [yolo] sections say. The program
computes exactly what quantize/int_runtime.py computes.
"""


def replace_folder(new, old):
    """Put the finished folder ``new`` in ``old``'s place; an earlier ``old`` is moved aside
    first (to a fresh hidden name: no folder of the user's is touched) and removed after, so a
    kill leaves either folder whole, never a mix."""
    aside = None
    if old.exists():
        aside = Path(tempfile.mkdtemp(prefix=f'.{old.name}.tmp{os.getpid()}.', dir=old.parent))
        old.rename(aside)  # onto the empty folder mkdtemp made
    new.rename(old)
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


def export_c(manifest, arrays, img_hw, out_dir):
    """Write the project into out_dir (built beside it, renamed when whole); returns the files."""
    if manifest['number_format'] not in WIDTH:
        raise CExportError(f"format {manifest['number_format']} has no C form")
    writer = Writer(manifest, arrays, img_hw)
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    # a hidden name with the writer's pid: swept like any temporary file if this run is killed
    tmp = Path(tempfile.mkdtemp(prefix=f'.{out_dir.name}.tmp{os.getpid()}.', dir=out_dir.parent))
    texts = {'yint_config.h': writer.config_h(), 'model.h': writer.model_h(),
             'model.c': writer.model_c(), 'weights.c': writer.weights_c(),
             'README.md': writer.readme(out_dir.name)}
    name = ''
    try:
        for name, text in texts.items():
            (tmp / name).write_text(text)
        for name in ('yint.h', 'yint.c', 'main.c'):
            shutil.copyfile(C_DIR / name, tmp / name)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise OSError(e.errno, e.strerror, str(out_dir / name)) from e
    replace_folder(tmp, out_dir)
    return [str(out_dir / n) for n in (*texts, 'yint.h', 'yint.c', 'main.c')]
