"""Detection metrics computed the way COCOeval computes them.

- Matching: per image and class, detections in descending confidence each take the unmatched
  ground truth of highest IoU at or above the threshold (10 thresholds 0.50:0.05:0.95).
- AP: precision made monotone (the envelope), sampled at 101 recall points, averaged.
- mAP: the mean over classes that have ground truth.
P, R and F1 are reported at the confidence where the class-mean F1 is highest.
"""
from __future__ import annotations

import numpy as np
import torch

from utils.boxes import box_iou

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_POINTS = np.linspace(0.0, 1.0, 101)


def class_iou(det, labels):
    """(n, m) IoU of detections and labels of the same class, 0 between classes."""
    iou = box_iou(det[:, :4], labels[:, 1:])
    iou[det[:, 5:6] != labels[None, :, 0]] = 0.0
    return iou


def match_detections(det, labels, iou_thresholds=IOU_THRESHOLDS, free=None, iou=None):
    """det (n, 6) xyxy, conf, cls and labels (m, 5) cls, xyxy, numpy -> (n, t) bool true positives.

    det must be sorted by descending confidence. Only detections overlapping some same-class label
    at the lowest threshold need the greedy loop; all others are false positives outright.
    free (n, t) bool: where False, the detection takes no label at that threshold. iou: their
    class_iou when the caller has it.
    """
    correct = np.zeros((len(det), len(iou_thresholds)), bool)
    if len(det) == 0 or len(labels) == 0:
        return correct
    iou = class_iou(det, labels) if iou is None else iou
    matched = np.zeros((len(iou_thresholds), len(labels)), bool)
    thresholds = np.asarray(iou_thresholds)[:, None]
    for i in np.nonzero((iou >= thresholds.min()).any(1))[0]:
        allowed = ~matched if free is None else ~matched & free[i][:, None]
        candidates = np.where((iou[i][None] >= thresholds) & allowed, iou[i][None], -1.0)
        best = candidates.argmax(1)
        hit = candidates[np.arange(len(thresholds)), best] >= 0
        correct[i] = hit
        matched[np.nonzero(hit)[0], best[hit]] = True
    return correct


def average_precision(recall, precision):
    """COCO 101-point interpolated AP of one PR curve (recall ascending)."""
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    idx = np.searchsorted(recall, RECALL_POINTS, side='left')
    sampled = np.where(idx < len(recall), envelope[np.minimum(idx, len(recall) - 1)], 0.0)
    return sampled.mean()


def ap_per_class(tp, conf, pred_cls, target_cls, nc, eps=1e-16, ignored=None):
    """tp (n, t) bool, conf (n,), pred_cls (n,), target_cls (m,) -> dict of per-class arrays.

    Keys: ap (nc, t); p_class, r_class, f1_class (nc,) at the best mean-F1 confidence; classes
    (indices with ground truth); n_targets (nc,); curves (confidence grid, per-class P, R, F1).
    ignored (n, t) bool: detections that count neither way at that threshold (COCOeval's area
    ranges); target_cls then lists only the ground truth that counts.
    """
    order = np.argsort(-conf, kind='stable')
    tp, conf, pred_cls = tp[order], conf[order], pred_cls[order]
    counted = np.ones_like(tp) if ignored is None else ~ignored[order]
    n_targets = np.bincount(target_cls.astype(int), minlength=nc)[:nc]
    grid = np.linspace(0, 1, 1000)
    ap = np.zeros((nc, tp.shape[1]))
    p_curve, r_curve = np.zeros((nc, grid.size)), np.zeros((nc, grid.size))
    for c in np.nonzero(n_targets)[0]:
        sel = pred_cls == c
        if not sel.any():
            continue
        tpc = (tp[sel] & counted[sel]).cumsum(0)
        fpc = (~tp[sel] & counted[sel]).cumsum(0)
        recall = tpc / (n_targets[c] + eps)
        # an ignored detection repeats the point before it, which leaves the AP as it is
        precision = tpc / np.maximum(tpc + fpc, eps)
        for t in range(tp.shape[1]):
            ap[c, t] = average_precision(recall[:, t], precision[:, t])
        # P and R at IoU 0.5 as functions of the confidence threshold (conf descends -> flip)
        r_curve[c] = np.interp(-grid, -conf[sel], recall[:, 0], left=0)
        # above the highest confidence there are no detections: report precision 0, not 1
        p_curve[c] = np.interp(-grid, -conf[sel], precision[:, 0], left=0)
    f1_curve = 2 * p_curve * r_curve / (p_curve + r_curve + eps)
    classes = np.nonzero(n_targets)[0]
    best = f1_curve[classes].mean(0).argmax() if classes.size else 0
    return {'ap': ap, 'p_class': p_curve[:, best], 'r_class': r_curve[:, best],
            'f1_class': f1_curve[:, best],
            'conf_at_best_f1': float(grid[best]), 'classes': classes, 'n_targets': n_targets,
            'curves': {'conf': grid, 'p': p_curve, 'r': r_curve, 'f1': f1_curve}}


# COCO's object sizes: the square root of the box area in the original image's pixels
SIZES = {'small': (0, 32 ** 2), 'medium': (32 ** 2, 96 ** 2), 'large': (96 ** 2, np.inf)}


def box_area(xyxy):
    return (xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1])


def match_in_range(det, labels, low, high, iou):
    """COCOeval's matching for one area range: (correct, ignored), both (n, t) bool.

    Ground truth outside [low, high) is ignored: a detection takes the best counted match it
    has; only without one may it take an ignored ground truth, and it is then ignored too, as is
    an unmatched detection whose own area lies outside the range. det sorted by confidence."""
    area = box_area(labels[:, 1:])
    inside = (area >= low) & (area < high)
    correct = match_detections(det, labels[inside], iou=iou[:, inside])
    ignored = np.zeros_like(correct)
    if len(det) and (~inside).any():  # greedy again, each threshold's unmatched ones
        ignored = match_detections(det, labels[~inside], free=~correct, iou=iou[:, ~inside])
    outside = (box_area(det[:, :4]) < low) | (box_area(det[:, :4]) >= high)
    ignored |= ~correct & outside[:, None]
    return correct, ignored, inside


class ConfusionMatrix:
    """(nc + 1) x (nc + 1) counts, rows = predicted, columns = true; the extra index is
    background (a missed object or a false detection)."""

    def __init__(self, nc, conf=0.25, iou_thres=0.45):
        self.matrix = np.zeros((nc + 1, nc + 1), np.int64)
        self.nc, self.conf, self.iou_thres = nc, conf, iou_thres

    def update(self, det, labels, det_image=None, label_image=None):
        """det (n, 6) xyxy, conf, cls; labels (m, 5) cls, xyxy; with det_image and label_image
        (each row's image) the rows of several images, which never match across images."""
        live = det[:, 4] > self.conf
        det = det[live]
        gt_cls = labels[:, 0].astype(int)
        if len(det) == 0:
            np.add.at(self.matrix, (self.nc, gt_cls), 1)
            return
        det_cls = det[:, 5].astype(int)
        if len(labels) == 0:
            np.add.at(self.matrix, (det_cls, self.nc), 1)
            return
        iou = box_iou(labels[:, 1:], det[:, :4])
        if det_image is not None:
            iou[label_image[:, None] != det_image[live][None]] = 0.0
        gi, di = np.nonzero(iou > self.iou_thres)
        pairs = sorted(zip(-iou[gi, di], gi, di))
        used_g, used_d = set(), set()
        for _, g, d in pairs:  # one-to-one, best IoU first
            if g not in used_g and d not in used_d:
                used_g.add(g)
                used_d.add(d)
                self.matrix[det_cls[d], gt_cls[g]] += 1
        missed = np.setdiff1d(np.arange(len(labels)), list(used_g))
        spurious = np.setdiff1d(np.arange(len(det)), list(used_d))
        np.add.at(self.matrix, (self.nc, gt_cls[missed]), 1)
        np.add.at(self.matrix, (det_cls[spurious], self.nc), 1)


class DetectionStats:
    """Accumulates per-image matches; ``compute`` turns them into the reported metrics."""

    def __init__(self, nc, confusion=True):
        self.nc = nc
        self.correct, self.conf, self.pred_cls, self.target_cls = [], [], [], []
        self.by_size = {k: {'correct': [], 'ignored': [], 'target_cls': []} for k in SIZES}
        self.images_per_class = np.zeros(nc, np.int64)
        self.confusion = ConfusionMatrix(nc) if confusion else None

    def update(self, det, labels, det_image=None, label_image=None):
        """det (n, 6) xyxy, conf, cls (any order); labels (m, 5) cls, xyxy; same pixel frame.
        With det_image and label_image (the image of each row, rows grouped by image) a whole
        batch at once: a detection only matches labels of its own image."""
        if det_image is None:
            det_image, label_image = np.zeros(len(det), int), np.zeros(len(labels), int)
        order = np.argsort(-det[:, 4], kind='stable')
        det, det_image = det[order], det_image[order]
        # one class per (image, class): matching never crosses images
        keyed_det, keyed_labels = det.copy(), labels.copy()
        keyed_det[:, 5] += det_image * self.nc
        keyed_labels[:, 0] += label_image * self.nc
        iou = class_iou(keyed_det, keyed_labels) if len(det) and len(labels) else \
            np.zeros((len(det), len(labels)))
        self.correct.append(match_detections(keyed_det, keyed_labels, iou=iou))
        for name, (low, high) in SIZES.items():
            correct, ignored, inside = match_in_range(keyed_det, keyed_labels, low, high, iou)
            size = self.by_size[name]
            size['correct'].append(correct)
            size['ignored'].append(ignored)
            size['target_cls'].append(labels[inside, 0])
        self.conf.append(det[:, 4])
        self.pred_cls.append(det[:, 5])
        self.target_cls.append(labels[:, 0])
        present = np.unique(keyed_labels[:, 0]).astype(int) % self.nc
        np.add.at(self.images_per_class, present, 1)
        if self.confusion is not None:
            self.confusion.update(det, labels, det_image, label_image)

    def compute(self) -> dict:
        cat = (lambda xs, shape: np.concatenate(xs, 0) if xs else np.zeros(shape))  # noqa: E731
        res = ap_per_class(cat(self.correct, (0, len(IOU_THRESHOLDS))).astype(bool),
                           cat(self.conf, (0,)), cat(self.pred_cls, (0,)),
                           cat(self.target_cls, (0,)), self.nc)
        cls = res['classes']
        mean = (lambda a: float(a[cls].mean()) if cls.size else 0.0)  # noqa: E731
        res.update(precision=mean(res['p_class']), recall=mean(res['r_class']),
                   f1=mean(res['f1_class']),
                   map50=mean(res['ap'][:, 0]), map50_95=mean(res['ap'].mean(1)),
                   images_per_class=self.images_per_class, by_size=self._by_size(cat))
        return res

    def _by_size(self, cat):
        """{size: mAP@0.5, mAP@0.5:0.95 and object count} over COCO's object sizes."""
        out = {}
        t = len(IOU_THRESHOLDS)
        for name, size in self.by_size.items():
            r = ap_per_class(cat(size['correct'], (0, t)).astype(bool), cat(self.conf, (0,)),
                             cat(self.pred_cls, (0,)), cat(size['target_cls'], (0,)), self.nc,
                             ignored=cat(size['ignored'], (0, t)).astype(bool))
            cls = r['classes']
            out[name] = {'targets': int(r['n_targets'].sum()),
                         'map50': float(r['ap'][cls, 0].mean()) if cls.size else None,
                         'map50_95': float(r['ap'][cls].mean()) if cls.size else None}
        return out


class SegmentationStats:
    """A (classes x classes) confusion matrix of pixels (rows: truth, columns: prediction),
    counted with one bincount per batch on the tensors' own device; pixels whose truth is
    ``ignore`` do not count. ``compute`` gives IoU per class, mIoU (over the classes that appear
    in the truth or the predictions), pixel accuracy and frequency-weighted IoU."""

    def __init__(self, nc, ignore=255):
        self.nc, self.ignore = nc, ignore
        self.matrix = None

    def update(self, pred, truth):
        """pred, truth: integer class-map tensors of equal shape (any leading dims)."""
        n = self.nc ** 2
        index = truth.to(torch.int32) * self.nc + pred  # ignored pixels go to one extra bin,
        index = torch.where(truth == self.ignore, n, index)  # cheaper than a boolean gather
        counts = index.flatten().bincount(minlength=n + 1)[:n].cpu().numpy().reshape(self.nc,
                                                                                       self.nc)
        self.matrix = counts if self.matrix is None else self.matrix + counts

    def compute(self) -> dict:
        m = self.matrix if self.matrix is not None else np.zeros((self.nc, self.nc), np.int64)
        tp = np.diag(m).astype(np.float64)
        truth, pred = m.sum(1).astype(np.float64), m.sum(0).astype(np.float64)
        union = truth + pred - tp
        iou = np.where(union > 0, tp / np.maximum(union, 1), np.nan)
        total = m.sum()
        freq = truth / max(total, 1)
        present = union > 0
        return {'iou': iou, 'miou': float(np.nanmean(iou)) if present.any() else 0.0,
                'pixel_acc': float(tp.sum() / total) if total else 0.0,
                'fw_iou': float(np.nansum(freq * np.nan_to_num(iou))), 'pixels': int(total)}
