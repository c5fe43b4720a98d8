"""The easy drawn-shapes set (data/shapes): six classes (data/shapes.names): circle, square,
triangle, star, cross, ring. Each image holds 1-8 objects of random colour, size (6 px to half
the image), aspect ratio and rotation, possibly overlapping (but never hiding more than 40% of
an earlier object), on one of several background textures with noise, sometimes blurred; one
image in twenty is pure background."""
from __future__ import annotations

import math

import cv2
import numpy as np

from data.drawn.primitives import SPLITS, background, polygon, rotate

CLASSES = ('circle', 'square', 'triangle', 'star', 'cross', 'ring')


def draw_shape(mask, cls, center, radius, ratio, angle, thickness):
    """Draw class `cls` as 255s into a uint8 mask."""
    cx, cy = center
    if cls == 0:  # circle (ellipse when ratio != 1)
        cv2.ellipse(mask, (cx, cy), (radius, max(1, int(radius * ratio))), math.degrees(angle),
                    0, 360, 255, -1)
    elif cls == 1:  # square (rectangle when ratio != 1), rotated
        pts = np.array([(-1, -ratio), (1, -ratio), (1, ratio), (-1, ratio)]) * radius
        cv2.fillPoly(mask, [rotate(pts + center, np.array(center), angle)], 255)
    elif cls == 2:  # triangle
        cv2.fillPoly(mask, [rotate(polygon(center, radius, 3, -math.pi / 2, ratio),
                                   np.array(center), angle)], 255)
    elif cls == 3:  # five-pointed star
        cv2.fillPoly(mask, [rotate(polygon(center, radius, 5, -math.pi / 2, ratio, inner=0.45),
                                   np.array(center), angle)], 255)
    elif cls == 4:  # cross (plus sign)
        w = max(1, int(radius * 0.35))
        bars = [np.array([(-radius, -w), (radius, -w), (radius, w), (-radius, w)]),
                np.array([(-w, -radius * ratio), (w, -radius * ratio), (w, radius * ratio),
                          (-w, radius * ratio)])]
        for bar in bars:  # one call each: a single fillPoly would cancel where they overlap
            cv2.fillConvexPoly(mask, rotate(bar + np.array(center), np.array(center), angle), 255)
    else:  # ring
        axes = (radius, max(1, int(radius * ratio)))
        cv2.ellipse(mask, (cx, cy), axes, math.degrees(angle), 0, 360, 255, thickness)


def make_image(seed, split, index, size):
    """One image, its YOLO label lines and its class mask, from (seed, split, index) alone."""
    rng = np.random.default_rng([seed, SPLITS[split], index])
    img = background(rng, size)
    owner = np.zeros((size, size), np.int16)  # which object owns each pixel (0 = background)
    areas, objects = {}, []
    n_objects = 0 if rng.random() < 0.05 else rng.integers(1, 9)  # a few pure backgrounds
    for _ in range(n_objects):
        for _attempt in range(10):
            cls = int(rng.integers(len(CLASSES)))
            radius = int(round(math.exp(rng.uniform(math.log(3), math.log(size / 4)))))
            ratio = float(rng.uniform(0.6, 1.5))
            center = (int(rng.integers(0, size)), int(rng.integers(0, size)))
            thickness = max(1, int(radius * rng.uniform(0.2, 0.4)))
            mask = np.zeros((size, size), np.uint8)
            draw_shape(mask, cls, center, radius, ratio, float(rng.uniform(0, math.pi)), thickness)
            on = mask > 0
            if on.sum() < 12:
                continue
            covered = np.bincount(owner[on], minlength=len(objects) + 1)[1:]
            if any(covered[k] > 0.4 * areas[k + 1] for k in range(len(objects))):
                continue
            color = rng.uniform(0, 255, 3)
            local = img[on].mean(0)
            if np.abs(color - local).sum() < 120:  # keep some contrast with what lies beneath
                color = 255 - local
            img[on] = np.clip(color + rng.normal(0, 6, (on.sum(), 3)), 0, 255).astype(np.uint8)
            owner[on] = len(objects) + 1
            areas[len(objects) + 1] = on.sum()
            ys, xs = np.nonzero(on)
            objects.append((cls, xs.min(), ys.min(), xs.max() + 1, ys.max() + 1))
            break
    if rng.random() < 0.3:
        img = cv2.GaussianBlur(img, (3, 3), rng.uniform(0.5, 1.2))
    lines = [f'{c} {(x1 + x2) / 2 / size:.6f} {(y1 + y2) / 2 / size:.6f} '
             f'{(x2 - x1) / size:.6f} {(y2 - y1) / size:.6f}' for c, x1, y1, x2, y2 in objects]
    classes = np.array([0] + [c + 1 for c, *_ in objects], np.uint8)  # owner -> class + 1
    return img, lines, classes[owner]
