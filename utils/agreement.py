"""How far one detector's output is from another's, without labels: the candidate's detections
scored (mAP, as COCOeval) against the reference's confident detections taken as ground truth.

Used where no labels exist or none may be used: an int8 graph checked against the fake-quant
model it came from before export writes it, a quantized or pruned model against the float one on
held-out unlabelled photos. 1.0 means the candidate finds what the reference finds, where it
finds it, ranked above everything else.
"""
from __future__ import annotations

import numpy as np
import torch

from utils.metrics import DetectionStats
from utils.nms import non_max_suppression

LABEL_CONF = 0.25  # the reference's detections above this are the labels (detect.py's default)


@torch.no_grad()
def agreement(reference, candidate, batches, label_conf=LABEL_CONF, iou_thres=0.6):
    """mAP@0.5 and mAP@0.5:0.95 of ``candidate`` against ``reference``'s detections above
    ``label_conf`` on float image batches in [0, 1]; both models as test.py runs them
    (``model(x)[0]``: decoded (b, n, 5 + nc)). Also the number of such labels."""
    stats, labels_seen = None, 0
    for x in batches:
        decoded = reference(x)[0].float()
        want = non_max_suppression(decoded, label_conf, 0.45)
        got = non_max_suppression(candidate(x)[0].float(), 0.001, iou_thres)
        stats = stats or DetectionStats(decoded.shape[-1] - 5, confusion=False)
        det_image = np.repeat(np.arange(len(got)), [len(d) for d in got])
        label_image = np.repeat(np.arange(len(want)), [len(w) for w in want])
        det = torch.cat(got).cpu().numpy()
        labels = torch.cat(want).cpu().numpy()
        labels = np.concatenate([labels[:, 5:6], labels[:, :4]], 1)
        stats.update(det, labels, det_image, label_image)
        labels_seen += len(labels)
    if stats is None or not labels_seen:
        return {'map50': float('nan'), 'map50_95': float('nan'), 'labels': 0}
    res = stats.compute()
    return {'map50': res['map50'], 'map50_95': res['map50_95'], 'labels': labels_seen}
