"""What both drawn-shapes generators share: the split seeds, textured noisy backgrounds, and
polygon / rotation geometry."""
from __future__ import annotations

import math

import cv2
import numpy as np

SPLITS = {'train': 0, 'val': 1}  # mixed into every image's seed: the splits never share one


def background(rng, size):
    kind = rng.integers(4)
    base = rng.uniform(0, 255, 3)
    if kind == 0:  # smooth gradient
        t = np.linspace(0, 1, size, dtype=np.float32)
        other = rng.uniform(0, 255, 3)
        g = t[None, :, None] if rng.random() < 0.5 else t[:, None, None]
        img = base * (1 - g) + other * g
        img = np.broadcast_to(img, (size, size, 3))
    elif kind == 1:  # low-frequency blotches
        small = rng.uniform(0, 255, (rng.integers(3, 9), rng.integers(3, 9), 3)).astype(np.float32)
        img = cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)
    elif kind == 2:  # stripes / lines clutter
        img = np.full((size, size, 3), base, np.float32)
        for _ in range(rng.integers(5, 25)):
            p1, p2 = rng.integers(0, size, 2), rng.integers(0, size, 2)
            color = rng.uniform(0, 255, 3).tolist()
            cv2.line(img, tuple(int(v) for v in p1), tuple(int(v) for v in p2), color,
                     int(rng.integers(1, 4)))
    else:  # flat
        img = np.full((size, size, 3), base, np.float32)
    noise = rng.normal(0, rng.uniform(2, 20), (size, size, 3)).astype(np.float32)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def polygon(center, radius, n, phase, ratio=1.0, inner=None):
    """Regular polygon (or star when inner is given) vertices, squashed by ratio along y."""
    pts = []
    steps = n * 2 if inner else n
    for k in range(steps):
        a = phase + 2 * math.pi * k / steps
        r = radius * (inner if inner and k % 2 else 1.0)
        pts.append((center[0] + r * math.cos(a), center[1] + r * ratio * math.sin(a)))
    return np.round(np.array(pts)).astype(np.int32)


def rotate(pts, center, angle):
    c, s = math.cos(angle), math.sin(angle)
    d = pts - center
    return np.round(np.stack([d[:, 0] * c - d[:, 1] * s, d[:, 0] * s + d[:, 1] * c], 1)
                    + center).astype(np.int32)
