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
    first = [{'params': bn, 'name': 'bn'}]
    if adam or hyp.get('optimizer', 'sgd') == 'adam':
        opt = torch.optim.Adam(first, lr=hyp['lr0'], betas=(hyp['momentum'], 0.999))
    else:
        opt = torch.optim.SGD(first, lr=hyp['lr0'], momentum=hyp['momentum'], nesterov=True)
    opt.add_param_group({'params': decay, 'weight_decay': wd, 'name': 'decay'})
    opt.add_param_group({'params': bias, 'name': 'bias'})
    return opt


def group(optimizer, name):
    """The parameter group called ``name``: 'bn' (BN weights, no decay), 'decay' (conv and
    linear weights), 'bias', 'hook' (hooks' own tensors)."""
    return next(g for g in optimizer.param_groups if g.get('name') == name)


def add_hook_parameters(optimizer, hooks, device):
    """Hooks' own trainable tensors (distillation adapters: trained, never part of the model),
    decayed like the conv weights."""
    params = [p for h in hooks for p in h.parameters(device)]
    if params:
        decay = group(optimizer, 'decay')['weight_decay']
        optimizer.add_param_group({'params': params, 'weight_decay': decay, 'name': 'hook'})


def warmup(optimizer, hyp, ni, n_warmup, epoch, lf):
    """Linear warmup: bias lr falls from warmup_bias_lr, the others rise from 0; momentum rises."""
    for g in optimizer.param_groups:
        start = hyp['warmup_bias_lr'] if g['name'] == 'bias' else 0.0
        g['lr'] = float(np.interp(ni, [0, n_warmup], [start, g['initial_lr'] * lf(epoch)]))
        if 'momentum' in g:
            g['momentum'] = float(np.interp(ni, [0, n_warmup], [hyp['warmup_momentum'],
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


GROUP_NUMBERS = ('lr', 'initial_lr', 'momentum', 'weight_decay', 'eps', 'dampening')


def loaded_state_problem(optimizer, scheduler, fresh_groups):
    """What a resumed optimizer or schedule holds that a step could not use, or '': torch's
    load_state_dict checks the structure, not the values (a learning rate of 'x' or a moment
    of the wrong shape load, then fail at the first step). fresh_groups: the groups as the
    run built them, before loading: each loaded setting must be of its kind."""
    for k, (loaded, fresh) in enumerate(zip(optimizer.param_groups, fresh_groups)):
        # checkpoints written before the groups had names hold them in the order built here
        loaded.setdefault('name', fresh['name'])
        problem = _kinds_problem(loaded, fresh) or _group_problem(loaded) or \
            _moments_problem(optimizer, loaded)
        if not problem and loaded['name'] != fresh['name']:
            problem = f"holds the '{loaded['name']}' parameters, this run's '{fresh['name']}'"
        if problem:
            return f'optimizer group {k}: {problem}'
    epoch, lrs = scheduler.last_epoch, scheduler.base_lrs
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        return f'schedule last_epoch={epoch!r}'
    if not isinstance(lrs, list) or len(lrs) != len(optimizer.param_groups) or \
            any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in lrs):
        return f'schedule base_lrs={lrs!r}'
    return ''


def _kinds_problem(group, fresh):
    for key, want in fresh.items():
        if key == 'params':
            continue
        got = group.get(key, KeyError)
        if type(got) is not type(want) and not (isinstance(want, float) and
                                                 isinstance(got, int) and
                                                 not isinstance(got, bool)):
            return f'{key}={got!r} where a {type(want).__name__} belongs'
    return ''


def _group_problem(group):
    for key in GROUP_NUMBERS:
        v = group.get(key, 0.0)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or \
                v < 0:
            return f'{key}={v!r} is not a number 0 or more'
    betas = group.get('betas', (0.9, 0.999))
    if not (isinstance(betas, (tuple, list)) and len(betas) == 2 and
            all(isinstance(b, (int, float)) and 0 <= b < 1 for b in betas)):
        return f'betas={betas!r}'
    return ''


def _moments_problem(optimizer, group):
    kinds = {frozenset(st) for st in optimizer.state.values()}
    if len(kinds) > 1:
        return f"state entries hold different moments ({' / '.join(sorted(map(str, kinds)))})"
    for p in group['params']:
        for key, t in optimizer.state.get(p, {}).items():
            if not isinstance(t, torch.Tensor):
                return f'state {key} holds a {type(t).__name__}, not a tensor'
            if key != 'step' and t.shape != p.shape:
                return f'state {key} has shape {tuple(t.shape)}, its parameter {tuple(p.shape)}'
            if not torch.isfinite(t).all():
                return f'state {key} holds NaN or infinity'
    return ''
