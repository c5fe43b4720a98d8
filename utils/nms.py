"""Non-maximum suppression for decoded YOLO outputs, in torch (CPU and CUDA alike).

Greedy NMS, exactly, for all images of a batch at once. Boxes of different images or classes
never suppress each other, so the candidates fall into groups (one class of one image) that are
padded into one (groups, m, m) IoU tensor; inside each group the Cluster-NMS fixed point (Zheng
et al., 2021: iterate "keep j unless a kept i < j overlaps it" until nothing changes) gives the
greedy result without a Python loop over boxes or images. A group too large to pad (a weak model
flooding the threshold) goes through ``nms``: blocks in descending score, each block first losing
the boxes a kept box overlaps, stopping at max_det survivors. (torchvision's NMS cannot be
installed beside CPU torch here.)
"""
import torch

from utils.boxes import box_iou, xywh2xyxy

MAX_NMS_INPUT = 30000  # candidates per image kept before NMS, highest confidence first
BLOCK = 512
PAD_BUDGET = 1 << 22  # IoU entries of the padded groups computed at once (16 MB of floats)


def _greedy_survivors(over, alive):
    """Greedy survivors among boxes in score order: over[..., i, j] says an earlier box i
    overlaps box j beyond the threshold (i < j only); alive says who may survive."""
    over = over.float()  # "is j overlapped by a kept box" as a matrix product
    keep = alive.clone()
    for _ in range(over.shape[-1]):
        new = alive & ((keep.float().unsqueeze(-2) @ over).squeeze(-2) == 0)
        if torch.equal(new, keep):
            break
        keep = new
    return keep


def nms(boxes, scores, iou_thres, max_keep=None):
    """Indices of the boxes greedy NMS keeps, best first: a box is dropped when its IoU with a
    kept box exceeds iou_thres. Stops once ``max_keep`` boxes are kept."""
    order = scores.argsort(descending=True, stable=True)
    b = boxes[order].float()
    kept = torch.zeros(0, dtype=torch.long, device=b.device)
    limit = max_keep if max_keep is not None else len(b)
    for start in range(0, len(b), BLOCK):
        blk = torch.arange(start, min(start + BLOCK, len(b)), device=b.device)
        alive = ~(box_iou(b[kept], b[blk]) > iou_thres).any(0)
        keep = _greedy_survivors((box_iou(b[blk], b[blk]) > iou_thres).triu(1), alive)
        kept = torch.cat((kept, blk[keep]))
        if len(kept) >= limit:
            break
    return order[kept[:limit]]


def sort_within(scores, groups):
    """Order that sorts by group, then by descending score (ties keep their input order), and
    each element's rank inside its group."""
    order = scores.argsort(descending=True, stable=True)
    order = order[groups[order].argsort(stable=True)]
    _, counts = torch.unique_consecutive(groups[order], return_counts=True)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(len(order), device=order.device) - (
        counts.cumsum(0) - counts).repeat_interleave(counts)
    return order, rank, counts


def _chunks(sizes):
    """Runs of consecutive groups (sizes ascending) padded together: sizes within a factor of
    two, so that padding at most doubles the work, and a padded IoU tensor within PAD_BUDGET.
    A group that alone does not fit comes as (None, its index)."""
    start = 0
    for i, m in enumerate(sizes):
        if m * m > PAD_BUDGET:
            if start < i:
                yield start, i
            yield None, i
            start = i + 1
        elif (i + 1 - start) * m * m > PAD_BUDGET or m > 2 * sizes[start]:
            yield start, i
            start = i
    if start < len(sizes):
        yield start, len(sizes)


def grouped_nms(boxes, scores, groups, iou_thres, max_keep=None):
    """Greedy NMS inside each group (boxes of different groups never suppress each other), all
    groups at once; returns a keep mask over the boxes. A group too large to pad stops after
    its best ``max_keep`` survivors (the caller keeps no more than that of any group)."""
    keep = torch.zeros(len(boxes), dtype=torch.bool, device=boxes.device)
    if not len(boxes):
        return keep
    order, _, counts = sort_within(scores, groups)
    starts = counts.cumsum(0) - counts
    by_size = counts.argsort(stable=True)
    sizes = counts[by_size].tolist()
    for first, end in _chunks(sizes):
        if first is None:
            members = order[starts[by_size[end]]:][:sizes[end]]
            keep[members[nms(boxes[members], scores[members], iou_thres, max_keep)]] = True
            continue
        g = by_size[first:end]
        pos = torch.arange(sizes[end - 1], device=boxes.device)
        valid = pos < counts[g, None]
        idx = order[(starts[g, None] + pos).clamp(max=len(order) - 1)]
        padded = boxes[idx].float() * valid[..., None]
        over = (box_iou(padded, padded) > iou_thres).triu(1)
        keep[idx[_greedy_survivors(over, valid)]] = True
    return keep


def _candidates(prediction, conf_thres, classes, multi_label):
    """Every image's boxes that pass the threshold: (k, 6) rows x1, y1, x2, y2, confidence
    (obj * class), class, and the image each comes from."""
    obj = prediction[..., 4]
    scores = prediction[..., 5:] * obj[..., None]
    live = obj > conf_thres
    if multi_label:
        image, anchor, cls = ((scores > conf_thres) & live[..., None]).nonzero(as_tuple=True)
        conf = scores[image, anchor, cls]
    else:
        conf, cls = scores.max(-1)
        image, anchor = (live & (conf > conf_thres)).nonzero(as_tuple=True)
        conf, cls = conf[image, anchor], cls[image, anchor]
    det = torch.cat((xywh2xyxy(prediction[image, anchor, :4]), conf[:, None],
                     cls[:, None].float()), 1)
    if classes is not None:
        wanted = torch.isin(cls, torch.tensor(classes, device=cls.device))
        det, image = det[wanted], image[wanted]
    top = sort_within(det[:, 4], image)[1] < MAX_NMS_INPUT
    return det[top], image[top]


def non_max_suppression(prediction, conf_thres=0.001, iou_thres=0.6, classes=None, agnostic=False,
                        max_det=300, multi_label=True):
    """prediction: (b, n, 5 + nc) decoded model output (xywh pixels, obj, class probabilities).

    Returns one (k, 6) tensor per image, best first: x1, y1, x2, y2, confidence (obj * class),
    class. multi_label keeps every class whose confidence passes (what mAP evaluation wants);
    otherwise only the best class of each box. classes: keep only these class indices.
    """
    det, image = _candidates(prediction, conf_thres, classes, multi_label)
    groups = image if agnostic else image * (prediction.shape[2] - 5) + det[:, 5].long()
    keep = grouped_nms(det[:, :4], det[:, 4], groups, iou_thres, max_det)
    det, image = det[keep], image[keep]
    order, rank, _ = sort_within(det[:, 4], image)
    first = order[rank[order] < max_det]
    counts = torch.bincount(image[first], minlength=len(prediction))
    return list(det[first].split(counts.tolist()))
