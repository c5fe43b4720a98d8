"""Box formats and overlaps. xyxy = corners, xywh = center + size; all vectorized."""
import math

import numpy as np
import torch


def xywh2xyxy(x):
    y = x.clone() if isinstance(x, torch.Tensor) else np.copy(x)
    y[..., 0] = x[..., 0] - x[..., 2] / 2
    y[..., 1] = x[..., 1] - x[..., 3] / 2
    y[..., 2] = x[..., 0] + x[..., 2] / 2
    y[..., 3] = x[..., 1] + x[..., 3] / 2
    return y


def xyxy2xywh(x):
    y = x.clone() if isinstance(x, torch.Tensor) else np.copy(x)
    y[..., 0] = (x[..., 0] + x[..., 2]) / 2
    y[..., 1] = (x[..., 1] + x[..., 3]) / 2
    y[..., 2] = x[..., 2] - x[..., 0]
    y[..., 3] = x[..., 3] - x[..., 1]
    return y


def box_iou(a, b):
    """IoU of every box in a (..., n, 4) with every box in b (..., m, 4), xyxy -> (..., n, m);
    leading dimensions are batch dimensions. Torch or numpy. One coordinate at a time, so that
    every temporary is a plain (..., n, m) array (NMS calls this on large padded batches)."""
    if isinstance(a, torch.Tensor) and not (torch.is_grad_enabled() and
                                            (a.requires_grad or b.requires_grad)):
        return _box_iou_inplace(a, b)
    lib = torch if isinstance(a, torch.Tensor) else np
    ax1, ay1, ax2, ay2 = (a[..., :, None, k] for k in range(4))
    bx1, by1, bx2, by2 = (b[..., None, :, k] for k in range(4))
    inter = ((lib.minimum(ax2, bx2) - lib.maximum(ax1, bx1)).clip(0)
             * (lib.minimum(ay2, by2) - lib.maximum(ay1, by1)).clip(0))
    return inter / ((ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter + 1e-9)


def _box_iou_inplace(a, b):
    """box_iou's arithmetic, in the same order (the same bits), reusing its (..., n, m)
    temporaries, from contiguous coordinates (broadcasting strided columns was most of the time):
    what NMS spends its time on for a weak model's thousands of candidates per image."""
    ax1, ay1, ax2, ay2 = (a[..., k].contiguous()[..., :, None] for k in range(4))
    bx1, by1, bx2, by2 = (b[..., k].contiguous()[..., None, :] for k in range(4))
    inter = torch.minimum(ax2, bx2).sub_(torch.maximum(ax1, bx1)).clamp_(min=0)
    inter.mul_(torch.minimum(ay2, by2).sub_(torch.maximum(ay1, by1)).clamp_(min=0))
    union = ((ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1)).sub_(inter).add_(1e-9)
    return inter.div_(union)


def wh_iou(wh1, wh2):
    """IoU of boxes sharing a center, from widths and heights: (n, 2) x (m, 2) -> (n, m)."""
    lib = torch if isinstance(wh1, torch.Tensor) else np
    inter = lib.minimum(wh1[:, None], wh2[None]).prod(2)
    return inter / (wh1.prod(1)[:, None] + wh2.prod(1)[None] - inter + 1e-9)


def clip_boxes(boxes, shape):
    """Clip xyxy boxes in place to an image of shape (h, w); h and w may be columns (n, 1), one
    image size per row."""
    for cols, limit in (([0, 2], shape[1]), ([1, 3], shape[0])):
        if isinstance(boxes, torch.Tensor):
            limit = torch.as_tensor(limit, dtype=boxes.dtype, device=boxes.device)
            boxes[..., cols] = torch.minimum(boxes[..., cols].clamp(min=0), limit)
        else:
            boxes[..., cols] = np.clip(boxes[..., cols], 0, limit)
    return boxes


def scale_boxes(boxes, letterbox_shape, orig_shape, ratio_pad=None):
    """Map xyxy boxes from a letterboxed image back to the original image (in place).

    ratio_pad = (gain, (pad_x, pad_y)) as the dataset reports it; computed when None. gain may
    be a pair (gain_x, gain_y): an image stretched to the input as darknet does. With ratio_pad
    given, gains, pads and orig_shape's h and w may be columns (n, 1): the rows of several images
    at once.
    """
    if ratio_pad is None:
        gain = min(letterbox_shape[0] / orig_shape[0], letterbox_shape[1] / orig_shape[1])
        pad = ((letterbox_shape[1] - orig_shape[1] * gain) / 2,
               (letterbox_shape[0] - orig_shape[0] * gain) / 2)
    else:
        gain, pad = ratio_pad
    gain_x, gain_y = gain if isinstance(gain, tuple) else (gain, gain)
    boxes[..., [0, 2]] -= pad[0]
    boxes[..., [1, 3]] -= pad[1]
    boxes[..., [0, 2]] /= gain_x
    boxes[..., [1, 3]] /= gain_y
    return clip_boxes(boxes, orig_shape)


def bbox_iou(box1, box2, kind='giou', eps=1e-7):
    """Element-wise IoU of xywh boxes (n, 4) and (n, 4): 'iou', 'giou' or 'ciou'."""
    (x1, y1, w1, h1), (x2, y2, w2, h2) = box1.unbind(-1), box2.unbind(-1)
    b1x1, b1x2, b1y1, b1y2 = x1 - w1 / 2, x1 + w1 / 2, y1 - h1 / 2, y1 + h1 / 2
    b2x1, b2x2, b2y1, b2y2 = x2 - w2 / 2, x2 + w2 / 2, y2 - h2 / 2, y2 + h2 / 2
    inter = ((torch.min(b1x2, b2x2) - torch.max(b1x1, b2x1)).clamp(0)
             * (torch.min(b1y2, b2y2) - torch.max(b1y1, b2y1)).clamp(0))
    union = w1 * h1 + w2 * h2 - inter + eps
    iou = inter / union
    if kind == 'iou':
        return iou
    cw = torch.max(b1x2, b2x2) - torch.min(b1x1, b2x1)  # enclosing box
    ch = torch.max(b1y2, b2y2) - torch.min(b1y1, b2y1)
    if kind == 'giou':
        area = cw * ch + eps
        return iou - (area - union) / area
    c2 = cw ** 2 + ch ** 2 + eps  # CIoU: center distance and aspect-ratio consistency
    rho2 = (x2 - x1) ** 2 + (y2 - y1) ** 2
    v = (4 / math.pi ** 2) * (torch.atan(w2 / (h2 + eps)) - torch.atan(w1 / (h1 + eps))) ** 2
    with torch.no_grad():
        alpha = v / (v - iou + (1 + eps))
    return iou - (rho2 / c2 + v * alpha)
