"""What the KD losses share: reading a raw head as box / objectness / class terms, the positive
cells of the ground truth, and temperature KL over classes.

Raw heads are (b, anchors, h, w, 5 + classes) as the [yolo] layer hands them to the loss. A head
built with new_coords=1 already applied the logistic, so its values are probabilities; the
helpers turn those back into logits so every loss reads logits.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

EPS = 1e-6


def logits(x, head):
    if head.new_coords:
        x = x.float().clamp(EPS, 1 - EPS)
        return torch.log(x) - torch.log1p(-x)
    return x.float()


def box_params(ps, head):
    """(n, 4) from raw predictions: xy offset in the cell and log(wh / anchor), a scale-free
    space for L2 terms."""
    s = head.scale_x_y
    if head.new_coords:
        xy = ps[:, :2].float() * s - (s - 1) / 2
        log_wh = torch.log(4 * ps[:, 2:4].float() ** 2 + EPS)
    else:
        xy = ps[:, :2].float().sigmoid() * s - (s - 1) / 2
        log_wh = ps[:, 2:4].float()
    return torch.cat((xy, log_wh), 1)


def target_params(tbox, anchors):
    """The ground truth in the space of ``box_params``."""
    return torch.cat((tbox[:, :2], torch.log(tbox[:, 2:4] / anchors + EPS)), 1)


def class_kl(s_logits, t_logits, temperature):
    """KL(teacher || student) of the class softmax at temperature T, times T^2 (Hinton et al.),
    per location: (..., classes) -> (...)."""
    t = temperature
    log_s = F.log_softmax(s_logits / t, -1)
    log_t = F.log_softmax(t_logits / t, -1)
    return (log_t.exp() * (log_t - log_s)).sum(-1) * t * t


def bernoulli_kl(s_logit, t_logit):
    """BCE of the student against the teacher's probability minus the teacher's entropy: the same
    gradient as BCE, and zero when the two agree."""
    p = t_logit.sigmoid()
    return F.binary_cross_entropy_with_logits(s_logit, p, reduction='none') - \
        F.binary_cross_entropy_with_logits(t_logit, p, reduction='none')


def positives(assigner, heads, preds, targets, img_hw):
    """Per head: ((image, anchor, gy, gx), target box in cell units, anchors, classes), the cells
    the detection loss trains as positives."""
    return [assigner.assign(head, p, targets, img_hw) for head, p in zip(heads, preds)]
