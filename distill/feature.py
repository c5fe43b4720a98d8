"""KDstr 4 and 5: feature imitation where the detection heads read.

The feature of a head is the input of the conv that feeds its [yolo] layer. Student and teacher
maps are compared by L2 (or L1) after a 1x1 adapter conv on the student where the channel counts
differ (a pruned student); adapters train with the student and are never part of the model, so
nothing of them reaches a checkpoint's weights or an export.

KDstr 5 counts only the locations near objects (Wang et al. 2019, fine-grained feature
imitation): for every ground-truth box, the IoU of each anchor placed at each cell with the box;
cells where some anchor exceeds ``psi`` times that box's best IoU form the mask.
"""
from __future__ import annotations

import torch
from torch import nn

from models.weights import WeightsError



class FeatureTaps:
    """Keeps the input of every head conv from the latest forward pass."""

    def __init__(self, model):
        self.features = [None] * len(model.yolo_layers)
        for k, j in enumerate(model.yolo_layers):
            model.module_list[j - 1].register_forward_pre_hook(self._store(k))

    def _store(self, k):
        def hook(module, inputs):
            self.features[k] = inputs[0]
        return hook


def head_channels(model, role) -> list[int]:
    out = []
    for j in model.yolo_layers:
        m = model.module_list[j - 1]
        if not isinstance(getattr(m, 'conv', None), nn.Conv2d):  # ConvBNAct or its QAT twin
            raise WeightsError(f'{role}: layer {j - 1} feeds yolo layer {j} but is not a conv; '
                             'feature distillation needs one')
        out.append(m.conv.in_channels)
    return out


def make_adapters(student_channels, teacher_channels) -> nn.ModuleList:
    return nn.ModuleList(nn.Conv2d(cs, ct, 1) if cs != ct else nn.Identity()
                         for cs, ct in zip(student_channels, teacher_channels))


def feature_loss(s_feats, t_feats, adapters, kind='l2', masks=None):
    """Mean squared (or absolute) difference over the counted locations, relative to the
    teacher's own mean square (or mean absolute value) there: feature scales differ a lot
    between layers and networks, a relative error does not."""
    terms = []
    for k, (fs, ft) in enumerate(zip(s_feats, t_feats)):
        ft = ft.float()
        d = adapters[k](fs).float() - ft
        err, ref = (d * d, ft * ft) if kind == 'l2' else (d.abs(), ft.abs())
        if masks is not None:
            m = masks[k].to(err.dtype)[:, None]
            err, ref = err * m, ref * m
        terms.append(err.sum() / ref.sum().clamp(min=1e-12))
    return torch.stack(terms).mean()


def imitation_mask(head, grid_hw, batch, targets, img_hw, psi=0.5) -> torch.Tensor:
    """(batch, h, w) bool: cells near a ground-truth box by the anchor-IoU rule."""
    h, w = grid_hw
    dev = targets.device
    mask = torch.zeros(batch, h, w, device=dev)
    if not len(targets):
        return mask.bool()
    stride = torch.tensor([img_hw[1] / w, img_hw[0] / h], device=dev)
    anchors = head.anchors.to(dev) / stride                                    # (na, 2) cells
    gy, gx = torch.meshgrid(torch.arange(h, device=dev), torch.arange(w, device=dev),
                            indexing='ij')
    centers = torch.stack((gx, gy), -1).float() + 0.5                          # (h, w, 2)
    a_lo = centers[None] - anchors[:, None, None] / 2                          # (na, h, w, 2)
    a_hi = centers[None] + anchors[:, None, None] / 2
    box = targets[:, 2:6] * torch.tensor([w, h, w, h], device=dev)
    g_lo, g_hi = box[:, :2] - box[:, 2:] / 2, box[:, :2] + box[:, 2:] / 2      # (n, 2)
    lo = torch.maximum(a_lo[None], g_lo[:, None, None, None])                  # (n, na, h, w, 2)
    hi = torch.minimum(a_hi[None], g_hi[:, None, None, None])
    inter = (hi - lo).clamp(min=0).prod(-1)
    union = anchors.prod(-1)[None, :, None, None] + box[:, 2:].prod(-1)[:, None, None, None]
    iou = inter / (union - inter)                                              # (n, na, h, w)
    best = iou.flatten(1).amax(1)
    near = (iou > psi * best[:, None, None, None]).any(1).float()              # (n, h, w)
    mask.index_add_(0, targets[:, 0].long(), near)
    return mask > 0
