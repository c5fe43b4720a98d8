"""The optimizer of a training run: its parameter groups, the learning-rate schedule, warmup, and
one step with the hooks (sparsity, quantization, distillation) around it."""
import math

import numpy as np
import torch

from utils.torch_utils import param_groups, unwrap


def lr_lambda(hyp, epochs):
    if hyp['schedule'] == 'step':
        return lambda e: 1.0 if e < 0.8 * epochs else 0.1 if e < 0.9 * epochs else 0.01
    return lambda e: ((1 - math.cos(e * math.pi / epochs)) / 2) * (hyp['lrf'] - 1) + 1


def build_optimizer(model, hyp, adam, batch_size, accumulate):
    decay, bn, bias = param_groups(model)
    wd = hyp['weight_decay'] * batch_size * accumulate / hyp['nbs']
    if adam or hyp.get('optimizer', 'sgd') == 'adam':
        opt = torch.optim.Adam(bn, lr=hyp['lr0'], betas=(hyp['momentum'], 0.999))
    else:
        opt = torch.optim.SGD(bn, lr=hyp['lr0'], momentum=hyp['momentum'], nesterov=True)
    opt.add_param_group({'params': decay, 'weight_decay': wd})
    opt.add_param_group({'params': bias})
    return opt


def add_hook_parameters(optimizer, hooks, device):
    """Hooks' own trainable tensors (distillation adapters: trained, never part of the model),
    decayed like the conv weights."""
    params = [p for h in hooks for p in h.parameters(device)]
    if params:
        decay = optimizer.param_groups[1]['weight_decay']
        optimizer.add_param_group({'params': params, 'weight_decay': decay})


def warmup(optimizer, hyp, ni, n_warmup, epoch, lf):
    """Linear warmup: bias lr falls from warmup_bias_lr, the others rise from 0; momentum rises."""
    for j, group in enumerate(optimizer.param_groups):
        start = hyp['warmup_bias_lr'] if j == 2 else 0.0
        group['lr'] = float(np.interp(ni, [0, n_warmup], [start, group['initial_lr'] * lf(epoch)]))
        if 'momentum' in group:
            group['momentum'] = float(np.interp(ni, [0, n_warmup], [hyp['warmup_momentum'],
                                                                     hyp['momentum']]))


def optimizer_step(model, optimizer, scaler, hooks, epoch, clip_grad):
    """One optimizer step; hooks see true (unscaled) gradients, once per step."""
    if scaler:
        scaler.unscale_(optimizer)
    for h in hooks:
        h.after_backward(unwrap(model), epoch)
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=clip_grad)
    if scaler:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    optimizer.zero_grad()
    for h in hooks:
        h.after_step(unwrap(model), epoch)
