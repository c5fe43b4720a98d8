"""Image augmentations that move boxes and masks exactly with the pixels.

Boxes here are (n, 5) arrays: class, x1, y1, x2, y2 in pixels of the image they travel with.
Masks are (h, w) uint8 class maps the size of their image. Every geometric transform is one 3x3
matrix applied to the image (cv2.warpAffine, linear), the mask (the same matrix, nearest
neighbour, so classes never blend) and the box corners, so the tests can draw a shape,
transform, and measure image, box and mask back. Pixels no image covers (letterbox and mosaic
padding, warped borders) get IGNORE in the mask: the loss and the metrics skip them.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

PAD_VALUE = (114, 114, 114)
IGNORE = 255  # mask value: not scored


def letterbox(img, new_shape=(320, 320), auto=False, stride=32, scaleup=True):
    """Resize keeping the aspect ratio and pad to new_shape (h, w).

    Returns the image, the scale ratio and the (left, top) padding; a box maps as x * ratio + left.
    auto=True pads only to the next multiple of stride (rectangular inference).
    """
    h0, w0 = img.shape[:2]
    if isinstance(new_shape, int):
        new_shape = (new_shape, new_shape)
    r = min(new_shape[0] / h0, new_shape[1] / w0)
    if not scaleup:
        r = min(r, 1.0)
    w1, h1 = round(w0 * r), round(h0 * r)
    dw, dh = new_shape[1] - w1, new_shape[0] - h1
    if auto:
        dw, dh = dw % stride, dh % stride
    if (w1, h1) != (w0, h0):
        interp = cv2.INTER_AREA if r < 1 else cv2.INTER_LINEAR
        img = cv2.resize(img, (w1, h1), interpolation=interp)
    left, top = dw // 2, dh // 2
    img = cv2.copyMakeBorder(img, top, dh - top, left, dw - left, cv2.BORDER_CONSTANT,
                             value=PAD_VALUE)
    return img, r, (left, top)


def letterbox_mask(mask, ratio, pad, new_shape):
    """The mask of an image that letterbox() resized by ``ratio`` and padded by ``pad``."""
    h0, w0 = mask.shape[:2]
    if isinstance(new_shape, int):
        new_shape = (new_shape, new_shape)
    w1, h1 = round(w0 * ratio), round(h0 * ratio)
    if (w1, h1) != (w0, h0):
        mask = cv2.resize(mask, (w1, h1), interpolation=cv2.INTER_NEAREST)
    left, top = pad
    return cv2.copyMakeBorder(mask, top, new_shape[0] - h1 - top, left,
                              new_shape[1] - w1 - left, cv2.BORDER_CONSTANT, value=IGNORE)


def resize_mask(mask, shape_hw):
    """A mask resized to an image of shape (h, w), classes kept (nearest neighbour)."""
    if mask.shape[:2] == tuple(shape_hw):
        return mask
    return cv2.resize(mask, (shape_hw[1], shape_hw[0]), interpolation=cv2.INTER_NEAREST)


def augment_hsv(img, hgain=0.015, sgain=0.7, vgain=0.4, rng=np.random):
    """Random hue/saturation/value gains, in place, through lookup tables (fast on uint8)."""
    if not (hgain or sgain or vgain):
        return img
    gains = rng.uniform(-1, 1, 3) * [hgain, sgain, vgain] + 1
    hue, sat, val = cv2.split(cv2.cvtColor(img, cv2.COLOR_BGR2HSV))
    x = np.arange(256, dtype=np.float32)
    lut_h = ((x * gains[0]) % 180).astype(np.uint8)
    lut_s = np.clip(x * gains[1], 0, 255).astype(np.uint8)
    lut_v = np.clip(x * gains[2], 0, 255).astype(np.uint8)
    hsv = cv2.merge((cv2.LUT(hue, lut_h), cv2.LUT(sat, lut_s), cv2.LUT(val, lut_v)))
    cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR, dst=img)
    return img


def flip_mask(mask, horizontal=True):
    return np.ascontiguousarray(mask[:, ::-1] if horizontal else mask[::-1])


def flip(img, boxes, horizontal=True):
    """Mirror the image and its xyxy boxes left-right (or up-down)."""
    boxes = boxes.copy()
    if horizontal:
        w = img.shape[1]
        boxes[:, [1, 3]] = w - boxes[:, [3, 1]]
        return np.ascontiguousarray(img[:, ::-1]), boxes
    h = img.shape[0]
    boxes[:, [2, 4]] = h - boxes[:, [4, 2]]
    return np.ascontiguousarray(img[::-1]), boxes


def affine_matrix(shape_in, shape_out, degrees=0.0, translate=0.0, scale=0.0, shear=0.0,
                  rng=np.random):
    """A random 3x3 affine taking an image of shape_in (h, w) into one of shape_out (centered)."""
    center = np.eye(3)
    center[0, 2], center[1, 2] = -shape_in[1] / 2, -shape_in[0] / 2
    rot = np.eye(3)
    angle, s = rng.uniform(-degrees, degrees), rng.uniform(1 - scale, 1 + scale)
    rot[:2] = cv2.getRotationMatrix2D((0, 0), angle, s)
    sh = np.eye(3)
    sh[0, 1] = math.tan(math.radians(rng.uniform(-shear, shear)))
    sh[1, 0] = math.tan(math.radians(rng.uniform(-shear, shear)))
    move = np.eye(3)
    move[0, 2] = rng.uniform(0.5 - translate, 0.5 + translate) * shape_out[1]
    move[1, 2] = rng.uniform(0.5 - translate, 0.5 + translate) * shape_out[0]
    return move @ sh @ rot @ center


def transform_boxes(boxes, m):
    """Apply 3x3 matrix m to xyxy boxes: transform the 4 corners, take their bounding box."""
    if len(boxes) == 0:
        return boxes.copy()
    x1, y1, x2, y2 = boxes[:, 1], boxes[:, 2], boxes[:, 3], boxes[:, 4]
    corners = np.stack([np.stack([x1, y1], 1), np.stack([x2, y1], 1),
                        np.stack([x1, y2], 1), np.stack([x2, y2], 1)], 1)  # (n, 4, 2)
    pts = corners @ m[:2, :2].T + m[:2, 2]
    out = boxes.copy()
    out[:, 1:3] = pts.min(1)
    out[:, 3:5] = pts.max(1)
    return out


def keep_visible(boxes, region, min_size=2, min_area_ratio=0.2, max_aspect=20):
    """Clip xyxy boxes to region (x1, y1, x2, y2); drop the mostly cut off, tiny or needle-thin."""
    out = boxes.copy()
    out[:, [1, 3]] = out[:, [1, 3]].clip(region[0], region[2])
    out[:, [2, 4]] = out[:, [2, 4]].clip(region[1], region[3])
    w, h = out[:, 3] - out[:, 1], out[:, 4] - out[:, 2]
    full = (boxes[:, 3] - boxes[:, 1]) * (boxes[:, 4] - boxes[:, 2])
    aspect = np.maximum(w / (h + 1e-9), h / (w + 1e-9))
    ok = (w > min_size) & (h > min_size) & (w * h > min_area_ratio * full) & (aspect < max_aspect)
    return out[ok]


def warp(img, boxes, m, shape_out):
    """Image and boxes through the 3x3 matrix m into an image of shape_out (h, w)."""
    warped = cv2.warpAffine(img, m[:2], (shape_out[1], shape_out[0]), borderValue=PAD_VALUE)
    return warped, keep_visible(transform_boxes(boxes, m), (0, 0, shape_out[1], shape_out[0]))


def warp_mask(mask, m, shape_out):
    return cv2.warpAffine(mask, m[:2], (shape_out[1], shape_out[0]), flags=cv2.INTER_NEAREST,
                          borderValue=IGNORE)


def random_affine(img, boxes, shape_out=None, degrees=0.0, translate=0.1, scale=0.5, shear=0.0,
                  rng=np.random):
    """Random rotation/scale/shear/translation of image and boxes into an image of shape_out."""
    shape_out = shape_out or img.shape[:2]
    m = affine_matrix(img.shape[:2], shape_out, degrees, translate, scale, shear, rng)
    return warp(img, boxes, m, shape_out)


def mosaic(images, boxes_list, size, rng=np.random, masks=None):
    """Four images around a random center on a (2 size x 2 size) canvas; boxes (and masks, when
    given) follow. Returns (canvas, boxes, mask canvas or None).

    images must already be resized so that their longer side is ``size``.
    """
    canvas = np.full((2 * size, 2 * size, 3), PAD_VALUE[0], np.uint8)
    mask_canvas = None if masks is None else np.full((2 * size, 2 * size), IGNORE, np.uint8)
    cx, cy = (int(rng.uniform(size * 0.5, size * 1.5)) for _ in range(2))
    out_boxes = []
    for k, (img, boxes) in enumerate(zip(images, boxes_list)):
        h, w = img.shape[:2]
        # where this image's corner meets the center: top-left, top-right, bottom-left, bottom-right
        x1, y1 = (cx - w, cy - h) if k == 0 else (cx, cy - h) if k == 1 else \
                 (cx - w, cy) if k == 2 else (cx, cy)
        cx1, cy1 = max(x1, 0), max(y1, 0)
        cx2, cy2 = min(x1 + w, 2 * size), min(y1 + h, 2 * size)
        canvas[cy1:cy2, cx1:cx2] = img[cy1 - y1:cy2 - y1, cx1 - x1:cx2 - x1]
        if mask_canvas is not None:
            mask_canvas[cy1:cy2, cx1:cx2] = masks[k][cy1 - y1:cy2 - y1, cx1 - x1:cx2 - x1]
        moved = boxes.copy()
        moved[:, [1, 3]] += x1
        moved[:, [2, 4]] += y1
        out_boxes.append(keep_visible(moved, (cx1, cy1, cx2, cy2)))
    boxes = np.concatenate(out_boxes, 0) if out_boxes else np.zeros((0, 5), np.float32)
    return canvas, boxes, mask_canvas
