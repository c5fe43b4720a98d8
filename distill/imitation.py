"""KDstr 3, imitation of the teacher's predictions at the positive cells of the ground truth:
L2 between student and teacher boxes (xy in the cell, log wh over the anchor) and the KL of the
class softmax at temperature T. Zero when the student predicts what the teacher does."""
from __future__ import annotations

import torch

from distill.common import box_params, class_kl, logits


def imitation_losses(s_preds, t_preds, heads, matches, temperature=3.0) -> dict:
    box, cls = [], []
    for s, t, head, ((b, a, gj, gi), _, _, _) in zip(s_preds, t_preds, heads, matches):
        if not len(b):
            continue
        ps, pt = s[b, a, gj, gi], t[b, a, gj, gi]
        box.append(((box_params(ps, head) - box_params(pt, head)) ** 2).sum(1).mean())
        if head.nc > 1:
            kl = class_kl(logits(ps[:, 5:], head), logits(pt[:, 5:], head), temperature)
            cls.append(kl.mean())
    zero = s_preds[0].new_zeros(()).float()
    return {'kd_box': torch.stack(box).mean() if box else zero,
            'kd_cls': torch.stack(cls).mean() if cls else zero}
