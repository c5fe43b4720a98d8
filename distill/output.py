"""KDstr 1, output distillation (Hinton et al. 2015 applied to YOLO heads).

Classes: KL divergence of the class softmax at temperature T, teacher to student, at every
anchor of every cell, weighted by the teacher's objectness (cells the teacher sees no object in
carry no class information). Objectness: BCE of the student against the teacher's probability,
written as a Bernoulli KL so that it is zero when the two agree.
"""
from __future__ import annotations

import torch

from distill.common import bernoulli_kl, class_kl, logits


def output_losses(s_preds, t_preds, heads, temperature=3.0) -> dict:
    cls, obj = [], []
    for s, t, head in zip(s_preds, t_preds, heads):
        s, t = logits(s, head), logits(t, head)
        weight = t[..., 4].sigmoid()
        if head.nc > 1:
            kl = class_kl(s[..., 5:], t[..., 5:], temperature)
            cls.append((kl * weight).sum() / weight.sum().clamp(min=1e-6))
        obj.append(bernoulli_kl(s[..., 4], t[..., 4]).mean())
    zero = s_preds[0].new_zeros(()).float()
    return {'kd_cls': torch.stack(cls).mean() if cls else zero, 'kd_obj': torch.stack(obj).mean()}
