"""Training losses: YOLO detection (every [yolo] head), per-pixel segmentation, and their sum.

YOLO: target assignment over every head, box (GIoU/CIoU), objectness and class BCE.

Assignment: a target goes to the cell containing its center on each head, for every anchor of that
head whose width and height are both within ``anchor_t`` times the target's (or, with iou_t > 0,
whose shape IoU exceeds iou_t). All of it is tensor arithmetic over (anchors x targets); there is
no loop over boxes. Decoding follows the [yolo] layer exactly (scale_x_y, new_coords), so the loss
trains the numbers that inference reads.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from utils.boxes import bbox_iou, wh_iou
from utils.datasets import DataError

BALANCE = {1: [1.0], 2: [4.0, 1.0], 3: [4.0, 1.0, 0.4]}  # objectness weight, finest head first


def scaled_gains(hyp, n_heads, nc, img_size):
    """Loss gains of the hyp file (3 heads, 80 classes, 640 px) rescaled for this model (a
    segmentation-only model, with no heads, keeps them as they are: none applies)."""
    h = dict(hyp)
    if not n_heads:
        return h
    h['box'] = hyp['box'] * 3 / n_heads
    h['cls'] = hyp['cls'] * nc / 80 * 3 / n_heads
    h['obj'] = hyp['obj'] * (img_size / 640) ** 2 * 3 / n_heads
    return h


class YoloLoss:
    def __init__(self, model, hyp):
        self.heads = [model.module_list[j] for j in model.yolo_layers]
        self.det_heads = model.det_heads  # picks the [yolo] outputs out of all heads
        self.hyp = hyp
        eps = hyp.get('label_smoothing', 0.0)
        self.cp, self.cn = 1.0 - 0.5 * eps, 0.5 * eps

    def _bce(self, x, target, pos_weight, head):
        if head.new_coords:  # the head already applied the logistic
            return F.binary_cross_entropy(x.float().clamp(1e-6, 1 - 1e-6), target)
        pw = torch.tensor([pos_weight], device=x.device)
        return F.binary_cross_entropy_with_logits(x.float(), target, pos_weight=pw)

    def _decode_cells(self, ps, anchors, head):
        """Predicted xywh in grid units relative to the assigned cell."""
        s = head.scale_x_y
        if head.new_coords:
            xy = ps[:, :2] * s - (s - 1) / 2
            wh = 4 * ps[:, 2:4] ** 2 * anchors
        else:
            xy = ps[:, :2].sigmoid() * s - (s - 1) / 2
            wh = torch.exp(ps[:, 2:4].clamp(max=6)) * anchors
        return torch.cat((xy, wh), 1)

    def assign(self, head, p, targets, img_hw):
        """Matches of one head: (image, anchor, gy, gx) indices, target box in grid units
        relative to the cell, matched anchors in grid units, classes."""
        _, na, ny, nx, _ = p.shape
        stride = torch.tensor([img_hw[1] / nx, img_hw[0] / ny], device=p.device)
        anchors = head.anchors.to(p.device) / stride  # grid units
        t = targets.to(p.device) * torch.tensor([1, 1, nx, ny, nx, ny], device=p.device)
        if self.hyp.get('iou_t', 0) > 0:
            match = wh_iou(anchors, t[:, 4:6]) > self.hyp['iou_t']
        else:
            r = t[None, :, 4:6] / anchors[:, None]
            match = torch.max(r, 1 / r).max(2).values < self.hyp['anchor_t']
        a, k = match.nonzero(as_tuple=True)
        t = t[k]
        gxy = t[:, 2:4]
        gij = gxy.long()
        gi, gj = gij[:, 0].clamp(0, nx - 1), gij[:, 1].clamp(0, ny - 1)
        tbox = torch.cat((gxy - torch.stack((gi, gj), 1), t[:, 4:6]), 1)
        return (t[:, 0].long(), a, gj, gi), tbox, anchors[a], t[:, 1].long()

    def __call__(self, preds, targets, img_hw):
        """preds: raw heads (b, a, h, w, 5 + nc); targets (n, 6) = image, class, xywh normalized.
        Returns (loss scaled by batch size for backward, detached [box, obj, cls])."""
        preds = self.det_heads(preds)
        dev = preds[0].device
        lbox, lobj, lcls = (torch.zeros((), device=dev) for _ in range(3))
        order = sorted(range(len(preds)), key=lambda i: -preds[i].shape[2])  # finest first
        balance = BALANCE.get(len(preds), [1.0] * len(preds))
        for rank, i in enumerate(order):
            p, head = preds[i], self.heads[i]
            tobj = torch.zeros(p.shape[:4], device=dev)
            (b, a, gj, gi), tbox, anchors, tcls = self.assign(head, p, targets, img_hw)
            if len(b):
                ps = p[b, a, gj, gi].float()
                iou = bbox_iou(self._decode_cells(ps, anchors, head), tbox,
                               self.hyp.get('iou_loss', 'giou'))
                lbox = lbox + (1.0 - iou).mean()
                tobj[b, a, gj, gi] = iou.detach().clamp(0)
                if head.nc > 1:
                    t = torch.full_like(ps[:, 5:], self.cn)
                    t[torch.arange(len(b), device=dev), tcls] = self.cp
                    lcls = lcls + self._bce(ps[:, 5:], t, self.hyp['cls_pw'], head)
            lobj = lobj + self._bce(p[..., 4], tobj, self.hyp['obj_pw'], head) * balance[rank]
        lbox, lobj, lcls = lbox * self.hyp['box'], lobj * self.hyp['obj'], lcls * self.hyp['cls']
        bs = preds[0].shape[0]
        return (lbox + lobj + lcls) * bs, torch.stack((lbox, lobj, lcls)).detach()


def segmentation_loss(logits, masks, kind='softmax', ignore=255):
    """Mean per-pixel loss of (b, classes, h, w) logits against (b, H, W) class masks: the logits
    are resized (bilinear) to the masks, pixels marked ``ignore`` do not count. Cross-entropy for
    [softmax] heads; for [logistic] heads (independent classes) BCE against the one-hot mask."""
    if logits.shape[-2:] != masks.shape[-2:]:
        logits = F.interpolate(logits, size=masks.shape[-2:], mode='bilinear',
                               align_corners=False)
    target = masks.long()
    if kind == 'softmax':
        return F.cross_entropy(logits.float(), target, ignore_index=ignore)
    valid = target != ignore
    onehot = F.one_hot(target.clamp(max=logits.shape[1] - 1), logits.shape[1])
    loss = F.binary_cross_entropy_with_logits(logits.float().permute(0, 2, 3, 1), onehot.float(),
                                              reduction='none').mean(-1)
    return (loss * valid).sum() / valid.sum().clamp(min=1)


class Criterion:
    """The loss train.py optimizes for any network: YOLO terms for [yolo] heads, a per-pixel term
    (times the hyp's ``seg`` gain) for a segmentation head. Returns (loss scaled by batch size for
    backward, {name: detached term})."""

    def __init__(self, model, hyp):
        self.yolo = YoloLoss(model, hyp) if model.yolo_layers else None
        self.model, self.hyp = model, hyp
        self.seg_kind = (model.module_list[model.seg_layers[0]].kind if model.seg_layers
                         else None)

    def __call__(self, preds, targets, img_hw, masks=None):
        terms, total = {}, 0.0
        bs = preds[0].shape[0]
        if self.yolo is not None:
            loss, items = self.yolo(preds, targets, img_hw)
            total = loss
            terms.update(zip(('box', 'obj', 'cls'), items))
        if self.seg_kind is not None:
            if masks is None:
                raise DataError('the network segments but the batch has no masks: the .data '
                                 'needs seg_classes= and seg_names=')
            seg = segmentation_loss(self.model.seg_logits(preds), masks.to(preds[0].device),
                                    self.seg_kind) * self.hyp['seg']
            total = total + seg * bs
            terms['seg'] = seg.detach()
        return total, terms
