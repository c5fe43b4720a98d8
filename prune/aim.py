"""Sparse training aimed at a cut (train.py --sr-target KEEP): targeted dropout of the channels
that a slim cut leaving KEEP of the BFLOPs would remove.

Each epoch the plan is chosen again from the current gammas (slim's plan, ``--rank layer``). In
training, a share of each batch's images goes through the network that the cut keeps: every cut
channel is replaced by what pruning leaves of it, its BN beta (gamma = 0). The share rises
linearly to 1 at a share of the epochs (--sr-fade, two thirds by default); from then on their
gammas are held at exactly 0, so the prune scripts' cut is exact and the rest of the run trains
the network that will be kept. A zero gamma already makes BN output its beta, so from then on the
dropout is skipped (it cost a sixth of a CPU epoch) and only the cut gammas' gradients are
zeroed, as the dropout zeroed them: the step is the same.
Evaluation sees the whole network until then (best.pt waits for the cut).
With --sr-round N every layer keeps a multiple of N channels: CPU and GPU kernels work in
channel blocks (onnxruntime's x86 convolutions in blocks of 8 or 16), and odd widths fall out of
them (docs/results/latency.md).

Why dropout and not a shrinking gamma (Gomez et al. 2019, targeted dropout): BN makes a layer's
scale free, so a network whose gammas are capped grows the weights that read them instead, and
the loss then comes all at once when the cap reaches 0; a channel that is absent for a growing
share of the images cannot be compensated that way. The L1 push of -sr alone does not move the
early high-resolution layers (their gradients outweigh it under Adam). The measurements behind
both: docs/results/pruning.md, "The 70% cut".
"""
from __future__ import annotations

import math

import torch

from prune.cost import percent_for_bflops
from prune.masks import channel_plan
from prune.modes import SparsityMode
from utils.errors import OptionError

# Every layer keeps at least a quarter of its channels: with slim's default floor (0.01) the
# plan starved the heads' wide convs and cost accuracy (docs/results/pruning.md).
LAYER_KEEP = 0.25
FADE = 2 / 3  # default share of the epochs after which the cut channels are gone for good


class CutAim:
    def __init__(self, keep, mode, epochs, fade=FADE, round_to=1):
        if mode == SparsityMode.LAYER or not 0 < keep < 1:
            raise OptionError(f'--sr-target is the share of BFLOPs to keep, in (0, 1), with '
                             f'--prune 0 or 1; got {keep} with --prune {mode}')
        if not 0 < fade <= 1:
            raise OptionError(f'--sr-fade is a share of the epochs, in (0, 1]; got {fade}')
        if int(round_to) != round_to or round_to < 1:
            raise OptionError(f'--sr-round is a whole number of channels, 1 or more; got '
                              f'{round_to}')
        self.keep, self.mode, self.epochs, self.fade = keep, mode, epochs, fade
        self.round_to = int(round_to)
        self.convs, self.img_size = [], None
        self.percent, self.cut, self.p = None, {}, 0.0  # cut: conv -> bool on its device
        self.pruned = None  # per image of the batch: through the kept network or not
        self.settled = False  # the cut gammas are held at 0: no dropout needed

    def select(self, model, percent):
        return channel_plan(model, self.mode, percent, min_keep=LAYER_KEEP, clamp=True,
                            rank='layer', round_to=self.round_to)

    def drop_probability(self, epoch):
        return min(1.0, (epoch + 1) / max(1, math.ceil(self.fade * self.epochs)))

    def attach(self, model, convs, img_size):
        """Hooks that draw the images of each batch and drop on the BNs of ``convs``; they act
        in training mode only."""
        self.convs, self.img_size = convs, img_size
        model.register_forward_pre_hook(self._draw)
        for i in convs:
            model.module_list[i].bn.register_forward_hook(self._dropout(i))

    def _draw(self, model, inputs):
        x = inputs[0]
        self.pruned = (torch.rand(x.shape[0], device=x.device) < self.p).view(-1, 1, 1, 1)

    def _dropout(self, i):
        def hook(bn, inputs, out):
            cut = self.cut.get(i)
            if not bn.training or self.settled or cut is None or self.pruned is None:
                return None
            drop = cut.view(1, -1, 1, 1) & self.pruned
            return torch.where(drop, bn.bias.view(1, -1, 1, 1).to(out.dtype), out)
        return hook

    def start_epoch(self, model, epoch):
        """Choose the plan from the current gammas and this epoch's drop probability."""
        self.percent = percent_for_bflops(model, self.keep, self.img_size, self.select)
        masks = self.select(model, self.percent).masks
        self.cut = {i: ~masks[i].to(model.module_list[i].bn.weight.device) for i in self.convs}
        self.p = self.drop_probability(epoch)
        self.settled = False
        self.settle(model)  # the first batch at share 1 already sees the cut gammas at 0

    def cut_share(self):
        """Share of the prunable channels in the cut: slim_prune's --percent for it."""
        cut = torch.cat(list(self.cut.values()))
        return round(cut.float().mean().item(), 4)

    def settle(self, model):
        """Once the cut channels are always dropped, their gammas are 0 for good."""
        if self.p < 1:
            return
        with torch.no_grad():
            for i, cut in self.cut.items():
                model.module_list[i].bn.weight.masked_fill_(cut, 0.0)
        self.settled = True

    def hold_grads(self, model):
        """Without the dropout a zero gamma still gets a gradient; zero it as the dropout did
        (it would count in the gradient clipping's norm)."""
        if not self.settled:
            return
        for i, cut in self.cut.items():
            grad = model.module_list[i].bn.weight.grad
            if grad is not None:
                grad.masked_fill_(cut, 0.0)
