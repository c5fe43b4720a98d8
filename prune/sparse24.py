"""2:4 structured sparsity (lightNet's ``sparse=1``, NVIDIA's ASP recipe).

In every run of 4 consecutive input channels at one kernel position of one filter, at most 2
weights are non-zero; Ampere-and-later tensor cores skip the zeros. The masks are computed once,
by magnitude, from trained weights; fine-tuning (train.py --sparse24) re-applies them after every
optimizer step, so every saved weight tensor (EMA included, which starts masked and only ever
averages masked tensors) is exactly 2:4.

Which layers: the convs a cfg marks ``sparse=1``, or, when it marks none, every eligible conv but
those that feed a head ([yolo], [softmax]): lightNet leaves its head convs dense, and on
yolov3-mini a head conv is the layer 2:4 hurts most (docs/results/sparsity.md). A conv
is eligible when it is not grouped (depthwise convs have one input channel per filter) and its
input channels are a multiple of 4; the others stay dense and are listed once. The
layers made 2:4 get ``sparse=1`` in the cfg the checkpoint carries, so exports say it too.

    python3 -m prune.sparse24 --check best.pt           # per layer: zeros and whether 2:4 holds
    python3 -m prune.sparse24 --check best.onnx         # the same on an export (fp32 or Q/DQ)
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
from terminaltables import AsciiTable

from models import Darknet
from models.cfg import parse_cfg_text
from models.sparse24 import holds_24, layer_conv, mask_24, sparse_layers
from models.weights import WeightsError, load_checkpoint, load_darknet_weights
from utils.cli import friendly_errors
from utils.errors import OptionError, ToolkitError
from utils.hooks import TrainHook
from utils.log import LOGGER
from utils.options import Parser

class Sparse24Error(ToolkitError):
    """A layer marked sparse=1 whose weights are not 2:4."""


def _row(name, w, marked):
    w = w.detach().cpu() if isinstance(w, torch.Tensor) else torch.tensor(np.asarray(w))
    return {'layer': name, 'shape': tuple(w.shape), 'zeros': float((w == 0).float().mean()),
            'holds': holds_24(w), 'marked': marked}


def check_checkpoint(path):
    """Rows for a .pt: its conv weights (EMA's when present) against its cfg's sparse= keys."""
    ckpt = load_checkpoint(path)
    blocks = parse_cfg_text(ckpt['cfg'], str(path))
    state = ckpt.get('ema') or ckpt['model']
    rows = []
    for key, w in state.items():
        if (m := re.fullmatch(r'module_list\.(\d+)\.conv\.weight', key)) and w.dim() == 4:
            i = int(m.group(1))
            rows.append(_row(i, w.float(), bool(blocks[i + 1].get('sparse', 0))))
    return sorted(rows, key=lambda r: r['layer'])


def check_darknet(weights, cfg):
    model = Darknet(cfg)
    load_darknet_weights(model, weights)
    return [_row(i, layer_conv(m).weight.detach(), bool(model.blocks[i + 1].get('sparse', 0)))
            for i, m in enumerate(model.module_list) if layer_conv(m) is not None]


def onnx_conv_weights(path):
    """{Conv node name: weight array} of an ONNX file; a Q/DQ graph's weights are its integers
    minus their zero point (zero where the float weight is zero)."""
    import onnx
    from google.protobuf.message import DecodeError  # onnx's dependency
    from onnx import numpy_helper

    try:
        g = onnx.load(str(path)).graph
    except (OSError, ValueError, DecodeError) as e:
        raise WeightsError(f'{path}: not a readable ONNX graph ({type(e).__name__})') from None
    consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    consts |= {n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in g.node
               if n.op_type == 'Constant'}
    dq = {n.output[0]: n for n in g.node if n.op_type == 'DequantizeLinear'}
    out = {}
    for k, n in enumerate(g.node):
        if n.op_type != 'Conv':
            continue
        src = n.input[1]
        if src in dq and dq[src].input[0] in consts:
            q, zp = consts[dq[src].input[0]], consts.get(dq[src].input[2], np.zeros(()))
            axis = next((a.i for a in dq[src].attribute if a.name == 'axis'), 1)
            shape = [1] * q.ndim
            if zp.ndim:
                shape[axis] = -1
            out[n.name or f'conv{k}'] = q.astype(np.int64) - zp.reshape(shape).astype(np.int64)
        elif src in consts:
            out[n.name or f'conv{k}'] = consts[src]
    return out


def check_onnx(path):
    return [_row(name, w, None) for name, w in onnx_conv_weights(path).items() if w.ndim == 4]


def check(weights, cfg=None):
    """Per conv: layer, shape, share of zeros, whether 2:4 holds, whether the cfg marks it."""
    suffix = Path(weights).suffix
    if cfg and suffix != '.weights':
        raise OptionError(f'--cfg is for darknet .weights; {weights} holds its own network')
    if suffix == '.onnx':
        return check_onnx(weights)
    if suffix == '.weights':
        if not cfg:
            raise OptionError(f'{weights}: darknet weights need --cfg')
        return check_darknet(weights, cfg)
    return check_checkpoint(weights)


class Sparse24Hook(TrainHook):
    """train.py --sparse24: masks from the loaded weights, re-applied after every step."""
    name = 'sparse24'

    def __init__(self):
        self.layers, self.masks = [], []

    def on_model(self, model):
        self.layers, dense = sparse_layers(model)
        if not self.layers:
            raise OptionError('--sparse24: no conv of this cfg can be 2:4 (each needs a multiple '
                              'of 4 input channels and no groups)')
        if dense:
            LOGGER.info('--sparse24: dense (cannot be 2:4): ' +
                        ', '.join(f'layer {i} ({why})' for i, why in dense.items()))
        self.masks = [mask_24(layer_conv(model.module_list[i]).weight) for i in self.layers]
        for i in self.layers:
            model.blocks[i + 1].options['sparse'] = '1'
        self.apply(model)
        LOGGER.info(f'--sparse24: {len(self.layers)} convs 2:4 by magnitude')
        return model

    @torch.no_grad()
    def apply(self, model):
        for k, i in enumerate(self.layers):
            w = layer_conv(model.module_list[i]).weight
            if self.masks[k].device != w.device:
                self.masks[k] = self.masks[k].to(w.device)
            w.mul_(self.masks[k])

    def after_step(self, model, epoch):
        self.apply(model)

    def state(self):
        return {'layers': list(self.layers), 'masks': [m.cpu() for m in self.masks]}

    def load_state(self, state):
        # a resumed run keeps the masks it started with (its weights are already masked)
        if state.get('masks'):
            self.layers, self.masks = list(state['layers']), list(state['masks'])


def sparse24_hook(opt):
    if not opt.sparse24:
        return None
    if opt.sr:
        raise OptionError('--sparse24 with -sr: sparse training empties whole channels for '
                          'pruning, 2:4 fixes a pattern on trained weights; run them in turn '
                          '(-sr, prune, then --sparse24; compress.py --sparse24 does)')
    return Sparse24Hook()


def report(rows) -> str:
    head = ['layer', 'shape', 'zeros', '2:4', 'sparse=1']
    body = [[r['layer'], 'x'.join(map(str, r['shape'])), f"{r['zeros']:.1%}",
             'yes' if r['holds'] else 'no', {True: 'yes', False: '', None: '?'}[r['marked']]]
            for r in rows]
    held = sum(r['holds'] for r in rows)
    return AsciiTable([head] + body).table + f'\n{held} of {len(rows)} convs hold 2:4'


@friendly_errors
def main(argv=None):
    p = Parser(description='Check 2:4 structured sparsity layer by layer.')
    p.add_argument('--check', required=True, metavar='WEIGHTS', help='.pt, .onnx or .weights')
    p.add_argument('--cfg', default='', help='the cfg of darknet .weights')
    opt = p.parse_args(argv)
    rows = check(opt.check, opt.cfg)
    print(report(rows))
    broken = [r['layer'] for r in rows if r['marked'] and not r['holds']]
    if broken:
        raise Sparse24Error(f'{opt.check}: layers marked sparse=1 that are not 2:4: '
                            f"{', '.join(map(str, broken))}")
    return rows


if __name__ == '__main__':
    main()
