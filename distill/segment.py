"""Distillation of a segmentation head: per-pixel KL between the teacher's and the student's
class distributions at temperature T (Hinton et al. 2015, applied at every pixel).

The student's logits are resized (bilinear) to the teacher's resolution when their output
strides differ. Scaled by T^2 so the gradient's size does not depend on T; averaged over pixels.
"""
from __future__ import annotations

import torch.nn.functional as F


def segmentation_kl(s_logits, t_logits, temperature=1.0):
    if s_logits.shape[-2:] != t_logits.shape[-2:]:
        s_logits = F.interpolate(s_logits, size=t_logits.shape[-2:], mode='bilinear',
                                 align_corners=False)
    t = temperature
    log_p_s = F.log_softmax(s_logits.float() / t, 1)
    p_t = F.softmax(t_logits.float() / t, 1)
    kl = (p_t * (p_t.clamp(min=1e-12).log() - log_p_s)).sum(1)
    return kl.mean() * t * t
