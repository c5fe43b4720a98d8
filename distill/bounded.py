"""KDstr 2, teacher-bounded regression (Chen et al. 2017, "Learning efficient object detection
models with knowledge distillation").

At the positive cells of the ground truth, student and teacher are each measured against the
truth: L2 of the box (xy in the cell, log wh over the anchor) and L2 of the class probabilities
against the one-hot class. The student pays its own L2 only where it is worse than the teacher
by more than ``margin``; where it already matches or beats the teacher the term is zero, so the
teacher bounds the regression instead of dictating it. (Chen et al. charge the student unless it
is better by the margin; we use the margin the other way round so that a student equal to its
teacher pays nothing.)
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from distill.common import box_params, logits, target_params


def _bounded(s_err, t_err, margin):
    return torch.where(s_err > t_err + margin, s_err, torch.zeros_like(s_err))


def bounded_losses(s_preds, t_preds, heads, matches, margin=0.0) -> dict:
    box, cls = [], []
    for s, t, head, ((b, a, gj, gi), tbox, anchors, tcls) in zip(s_preds, t_preds, heads,
                                                                  matches):
        if not len(b):
            continue
        ps, pt = s[b, a, gj, gi], t[b, a, gj, gi]
        truth = target_params(tbox, anchors)
        s_err = ((box_params(ps, head) - truth) ** 2).sum(1)
        t_err = ((box_params(pt, head) - truth) ** 2).sum(1)
        box.append(_bounded(s_err, t_err.detach(), margin).mean())
        if head.nc > 1:
            onehot = F.one_hot(tcls, head.nc).float()
            s_err = ((logits(ps[:, 5:], head).sigmoid() - onehot) ** 2).sum(1)
            t_err = ((logits(pt[:, 5:], head).sigmoid() - onehot) ** 2).sum(1)
            cls.append(_bounded(s_err, t_err.detach(), margin).mean())
    zero = s_preds[0].new_zeros(()).float()
    return {'kd_box': torch.stack(box).mean() if box else zero,
            'kd_cls': torch.stack(cls).mean() if cls else zero}
