"""KDstr 1, output distillation (Hinton et al. 2015 applied to YOLO heads), and KDstr 6, its
objectness-scaled form (Mehta and Ozturk 2018, "Object detection at 200 frames per second").

Classes: KL divergence of the class softmax at temperature T, teacher to student, at every
anchor of every cell, weighted by the teacher's objectness (cells the teacher sees no object in
carry no class information). Objectness: BCE of the student against the teacher's probability,
written as a Bernoulli KL so that it is zero when the two agree. KDstr 6 adds the boxes the same
way: L2 between student and teacher boxes (xy in the cell, log wh over the anchor) at every
anchor, weighted by the teacher's objectness, so the student copies the teacher's boxes where
the teacher sees objects, including the ones the ground truth's positive cells do not cover.
"""
from __future__ import annotations

import torch

from distill.common import bernoulli_kl, box_params, class_kl, logits


def _weighted_mean(values, weight):
    return (values * weight).sum() / weight.sum().clamp(min=1e-6)


def output_losses(s_preds, t_preds, heads, temperature=3.0, boxes=False) -> dict:
    cls, obj, box = [], [], []
    for s, t, head in zip(s_preds, t_preds, heads):
        sl, tl = logits(s, head), logits(t, head)
        weight = tl[..., 4].sigmoid()
        if boxes:  # box_params reads the raw values
            width = s.shape[-1]
            d = box_params(s.reshape(-1, width), head) - box_params(t.reshape(-1, width), head)
            box.append(_weighted_mean((d ** 2).sum(1), weight.reshape(-1)))
        if head.nc > 1:
            cls.append(_weighted_mean(class_kl(sl[..., 5:], tl[..., 5:], temperature), weight))
        obj.append(bernoulli_kl(sl[..., 4], tl[..., 4]).mean())
    zero = s_preds[0].new_zeros(()).float()
    out = {'kd_cls': torch.stack(cls).mean() if cls else zero, 'kd_obj': torch.stack(obj).mean()}
    if boxes:
        out['kd_box'] = torch.stack(box).mean()
    return out
