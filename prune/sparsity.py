"""Sparse training (-sr --s S --prune MODE): an L1 push on the BN gammas that pruning may remove.

After backward (after AMP unscaling, once per optimizer step) the gradient of each prunable
gamma gains S * sign(gamma), the subgradient of S * |gamma|, so unimportant channels drift to zero
and pruning them later costs little. Modes choose which gammas:
  0: convs whose channels nothing else shares (not tied to shortcuts, SE or depthwise convs);
  1: also the groups tied by shortcut chains, SE and depthwise convs;
  2: the first conv of every residual block, the gammas layer pruning ranks blocks by.

With --sr-flops (modes 0 and 1) each gamma's push is S times its channel's BFLOPs cost over the
mean cost (prune/cost.py), as in MorphNet: an early 80x80 channel costs eight times a deep 10x10
one. Measured on yolov3-mini, it pays only with the prune scripts' ``--rank layer``: the push
shrinks the dear layers whole rather than channel by channel (BN makes a layer's scale free), and
a global |gamma| threshold would then empty them.

With --sr-target KEEP (modes 0 and 1) the push falls only on the channels that a slim cut leaving
KEEP of the BFLOPs would remove, and those channels are dropped out of a growing share of the
training images until they are gone (prune/aim.py).
"""
from __future__ import annotations

import torch
from torch import nn

from models.darknet import is_quantized
from prune.aim import FADE, CutAim
from prune.cost import bflops_below, cost_weights
from prune.deps import prunable_groups, residual_blocks
from prune.modes import SparsityMode
from utils.errors import OptionError
from utils.hooks import TrainHook
from utils.plots import gamma_histogram, plot_gamma_history

SMALL_GAMMA = 1e-2


def residual_block_convs(model) -> list[int]:
    """First conv of each residual block that layer pruning may drop."""
    return [s - 2 for s in residual_blocks(model)]


def sparse_convs(model, mode) -> list[int]:
    convs = (residual_block_convs(model) if mode == SparsityMode.LAYER else
             sorted(c for g in prunable_groups(model, mode) for c in g.convs))
    return [c for c in convs if isinstance(model.module_list[c].bn, nn.BatchNorm2d)]


class SparsityHook(TrainHook):
    name = 'sparsity'

    def __init__(self, s, mode, schedule='constant', epochs=1, flops=False, target=None,
                 fade=FADE, round_to=1):
        if flops and mode == SparsityMode.LAYER:
            raise OptionError('--sr-flops weighs channels; it needs --prune 0 or 1, not 2')
        self.s, self.mode, self.schedule, self.epochs = s, mode, schedule, epochs
        self.flops, self.groups, self.img_size = flops, [], None
        self.gammas, self.weights = [], []  # weights: the push per gamma over S (1 unless flops)
        self.convs, self.aim = [], None if target is None else CutAim(target, mode, epochs, fade,
                                                                    round_to)
        self.push = []  # with --sr-target: self.weights on the cut channels, 0 elsewhere
        self.history = []  # |gamma| histogram per epoch

    def on_model(self, model):
        convs = self.convs = sparse_convs(model, self.mode)
        self.gammas = [model.module_list[i].bn.weight for i in convs]
        self.weights = [1.0] * len(convs)
        # the channel groups, for the BFLOPs a cut of the small ones saves
        if self.mode != SparsityMode.LAYER:
            self.groups, self.img_size = prunable_groups(model, self.mode), model.img_size[1]
        if self.flops:
            weights = cost_weights(model, self.groups, self.img_size)
            by_conv = {i: w for g, w in zip(self.groups, weights) for i in g.convs}
            self.weights = [by_conv[i] for i in convs]
        if self.aim:
            self.aim.attach(model, convs, self.img_size)
        return model

    def strength(self, epoch):
        """Constant, or (schedule 'decay') a tenth of it over the last 30% of the epochs."""
        late = epoch >= 0.7 * self.epochs
        return self.s * 0.1 if self.schedule == 'decay' and late else self.s

    def on_epoch_start(self, model, epoch):
        if self.aim:  # this epoch's push: on the cut channels only
            self.aim.start_epoch(model, epoch)
            self.push = [w * self.aim.cut[i] for w, i in zip(self.weights, self.convs)]

    def after_backward(self, model, epoch):
        if self.aim:
            self.aim.hold_grads(model)
        s = self.strength(epoch)
        with torch.no_grad():
            for g, w in zip(self.gammas, self.push if self.aim else self.weights):
                if g.grad is not None:
                    g.grad.add_(s * w * torch.sign(g))

    def after_step(self, model, epoch):
        if self.aim:
            self.aim.settle(model)

    def on_epoch_end(self, model, epoch):
        if not self.gammas:
            return {'bn_small': 0.0}
        values = torch.cat([g.detach().abs().flatten().float().cpu() for g in self.gammas])
        self.history.append({'epoch': epoch, 'counts': gamma_histogram(values.numpy())})
        if self.save_dir:
            plot_gamma_history(self.history, self.save_dir / 'gamma_hist.png')
        small = {'bn_small': round((values < SMALL_GAMMA).float().mean().item(), 4)}
        if self.groups and not is_quantized(model):  # comparable across -sr runs, unlike counts
            small['bflops_small'] = round(bflops_below(model, self.groups, self.img_size,
                                                       SMALL_GAMMA), 4)
        if self.aim:
            small |= {'sr_target_cut': self.aim.cut_share(),
                      'sr_target_drop': round(self.aim.p, 4)}
        return small

    def best_eligible(self, epoch):
        return self.aim is None or self.aim.drop_probability(epoch) >= 1

    def state(self):
        return {'history': self.history}

    def load_state(self, state):
        self.history = list(state.get('history', []))


def sparsity_hook(opt):
    """The hook for train.py's -sr flags (TrainOptions), or None without -sr."""
    if not opt.sr:
        for flag, value, default in (('--sr-target', opt.sr_target, None),
                                     ('--sr-fade', opt.sr_fade, FADE),
                                     ('--sr-round', opt.sr_round, 1)):
            if value != default:
                raise OptionError(f'{flag} shapes sparse training: give -sr too')
        return None
    if opt.prune not in (0, 1, 2):
        raise OptionError(f'--prune must be 0, 1 or 2, got {opt.prune}')
    if opt.s < 0:
        raise OptionError(f'--s is a strength, 0 or more, got {opt.s}')
    target = opt.sr_target
    if target is not None and opt.quantized:
        raise OptionError('--sr-target plans cuts on the float model; drop --quantized')
    if target is None and opt.sr_fade != FADE:
        raise OptionError('--sr-fade times the cut of --sr-target; give --sr-target too')
    if target is None and opt.sr_round != 1:
        raise OptionError('--sr-round shapes the cut of --sr-target; give --sr-target too')
    return SparsityHook(opt.s, opt.prune, opt.sr_schedule, opt.epochs, opt.sr_flops, target,
                        opt.sr_fade, opt.sr_round)
