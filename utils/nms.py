"""Non-maximum suppression for decoded YOLO outputs, in torch (CPU and CUDA alike).

Greedy NMS, exactly: boxes go through in descending score, a block at a time. A block first loses
every box that overlaps a box already kept; inside the block the Cluster-NMS fixed point (Zheng et
al., 2021: iterate "keep j unless a kept i < j overlaps it" until nothing changes) gives the
greedy result without a Python loop over boxes. Because greedy output is in score order, the work
stops once ``max_keep`` boxes are kept, which bounds the cost when a weak model floods the
threshold with candidates. (torchvision's NMS cannot be installed beside CPU torch here.)
"""
import torch

from utils.boxes import box_iou, xywh2xyxy

MAX_NMS_INPUT = 30000  # candidates per image kept before NMS, highest confidence first
BLOCK = 512


def _greedy_in_block(iou, alive, iou_thres):
    """Greedy survivors among boxes sorted by score, given their IoU matrix and who may survive."""
    upper = iou.triu(1)
    keep = alive.clone()
    for _ in range(len(keep)):
        suppressed = ((upper * keep[:, None]) > iou_thres).any(0)
        new = alive & ~suppressed
        if torch.equal(new, keep):
            break
        keep = new
    return keep


def nms(boxes, scores, iou_thres, classes=None, max_keep=None):
    """Indices of the boxes greedy NMS keeps, best first; per class when ``classes`` is given
    (boxes of different classes never suppress each other). A box is dropped when its IoU with a
    kept box exceeds iou_thres."""
    order = scores.argsort(descending=True, stable=True)
    b = boxes[order].float()
    c = classes[order] if classes is not None else torch.zeros(len(b), device=b.device)

    def overlaps(i, j):  # IoU of box sets i and j, zero across classes
        return box_iou(b[i], b[j]) * (c[i][:, None] == c[j][None])

    kept = torch.zeros(0, dtype=torch.long, device=b.device)
    limit = max_keep if max_keep is not None else len(b)
    for start in range(0, len(b), BLOCK):
        blk = torch.arange(start, min(start + BLOCK, len(b)), device=b.device)
        alive = ~(overlaps(kept, blk) > iou_thres).any(0)
        keep = _greedy_in_block(overlaps(blk, blk), alive, iou_thres)
        kept = torch.cat((kept, blk[keep]))
        if len(kept) >= limit:
            break
    return order[kept[:limit]]


def non_max_suppression(prediction, conf_thres=0.001, iou_thres=0.6, classes=None, agnostic=False,
                        max_det=300, multi_label=True):
    """prediction: (b, n, 5 + nc) decoded model output (xywh pixels, obj, class probabilities).

    Returns one (k, 6) tensor per image: x1, y1, x2, y2, confidence (obj * class), class.
    multi_label keeps every class whose confidence passes (what mAP evaluation wants); otherwise
    only the best class of each box. classes: keep only these class indices.
    """
    out = []
    for x in prediction:
        x = x[x[:, 4] > conf_thres]
        scores = x[:, 5:] * x[:, 4:5]
        boxes = xywh2xyxy(x[:, :4])
        if multi_label:
            i, j = (scores > conf_thres).nonzero(as_tuple=True)
            det = torch.cat((boxes[i], scores[i, j, None], j[:, None].float()), 1)
        else:
            conf, j = scores.max(1, keepdim=True)
            det = torch.cat((boxes, conf, j.float()), 1)[conf.view(-1) > conf_thres]
        if classes is not None:
            det = det[(det[:, 5:6] == torch.tensor(classes, device=det.device)).any(1)]
        if det.shape[0] > MAX_NMS_INPUT:
            det = det[det[:, 4].argsort(descending=True)[:MAX_NMS_INPUT]]
        keep = nms(det[:, :4], det[:, 4], iou_thres, None if agnostic else det[:, 5], max_det)
        out.append(det[keep])
    return out
