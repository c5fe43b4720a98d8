"""Torch-Pruning (DepGraph) driven on the toolkit's Darknet module, for bench/peers/compare.py.

Torch-Pruning prunes the torch module in place and writes no darknet files; ``carried`` rebuilds
the result as a cfg (each [convolutional]'s filters= read from its pruned conv) with the same
weights, so that train.py fine-tunes every method with one recipe. Its regularizers run inside
train.py's loop through a hook (utils/hooks.py), with the same epochs as the toolkit's sparse
training.

Feeds docs/results/peers.md (through bench/peers/compare.py).
"""
from __future__ import annotations

import copy

import torch

from models.cfg import load_blocks
from models.darknet import Darknet
from utils.hooks import HOOK_BUILDERS, TrainHook

KINDS = ('bnscale', 'groupnorm')


def _example(model, img_size):
    return torch.rand(1, model.in_channels, img_size, img_size,
                      device=next(model.parameters()).device)


def pruner(model, kind, ratio, img_size, reg=None):
    """Torch-Pruning's BNScalePruner or GroupNormPruner over the whole network (global
    ranking), the convs that feed the heads left whole: their channels are anchors x (5 +
    classes) or the segmentation classes."""
    import torch_pruning as tp

    heads = [model.module_list[j - 1].conv for j in model.head_layers]
    common = {'pruning_ratio': ratio, 'global_pruning': True, 'ignored_layers': heads,
              'forward_fn': lambda m, x: m.heads(x)}
    if reg is not None:
        common['reg'] = reg
    if kind == 'bnscale':
        return tp.pruner.BNScalePruner(model, _example(model, img_size),
                                       tp.importance.BNScaleImportance(), **common)
    return tp.pruner.GroupNormPruner(model, _example(model, img_size),
                                     tp.importance.GroupMagnitudeImportance(p=2), **common)


def carried(model) -> Darknet:
    """The pruned module as a Darknet built from a cfg: same weights, same outputs."""
    blocks = load_blocks(model.blocks)
    for i, m in enumerate(model.module_list):
        if blocks[i + 1].type == 'convolutional':
            blocks[i + 1].options['filters'] = str(m.conv.out_channels)
    net = Darknet(blocks)
    net.load_state_dict(model.state_dict())
    return net.to(next(model.parameters()).device).train(model.training)


def pruned_to(model, kind, keep, img_size, steps=12):
    """Torch-Pruning's cut of a copy of ``model`` at the ratio (bisected) whose BFLOPs come
    closest to ``keep`` of the original's without exceeding it; (Darknet, ratio)."""
    full = model.info(img_size)['bflops']
    lo, hi, best = 0.0, 0.99, None
    for _ in range(steps):
        ratio = (lo + hi) / 2
        cut = copy.deepcopy(model).eval()
        pruner(cut, kind, ratio, img_size).step()
        net = carried(cut)
        if net.info(img_size)['bflops'] <= keep * full:
            hi, best = ratio, (net, ratio)
        else:
            lo = ratio
    if best is None:
        raise ValueError(f'Torch-Pruning {kind} cannot reach {keep:.0%} of the BFLOPs')
    return best


class RegularizerHook(TrainHook):
    """Torch-Pruning's sparse-training term: ``regularize`` after every backward."""
    name = 'torch_pruning'

    def __init__(self, kind, reg, img_size):
        self.kind, self.reg, self.img_size = kind, reg, img_size
        self.pruner = None

    def after_backward(self, model, epoch):
        if self.pruner is None:  # built on the model being trained, where its grads are
            self.pruner = pruner(model, self.kind, 0.5, self.img_size, self.reg)
            model.train()  # tracing the graph left it in eval mode
        self.pruner.regularize(model)


def _regularizer(opt):
    spec = opt.extra.get('torch_pruning')
    return RegularizerHook(**spec) if spec else None


if _regularizer not in HOOK_BUILDERS:
    HOOK_BUILDERS.append(_regularizer)
