"""The hard built-in scene: 24 classes with look-alike pairs, many small objects, clutter.

The easy shapes dataset saturates (a 70% BFLOPs cut costs 0.2 point), so it cannot tell
compression methods apart. These scenes keep what makes real datasets hard while staying
offline and small:
- look-alikes that differ in a detail (ring / ring with a dot, pentagon / hexagon, five- and
  six-pointed stars, filled / hollow square and triangle) or only in colour (red, green and blue
  drops, while drops of other colours are clutter, not a class);
- sizes from 6 to 200 px, skewed small, objects cut by the image border and partly hidden by
  later ones (up to 55%);
- textured, noisy backgrounds with distractors (blobs, scribbles, text, off-colour drops);
- lighting (gain, gamma, a gradient), blur (Gaussian or motion) and JPEG quality that vary;
- a long tail: class frequencies follow a Zipf law over a fixed order of the classes.
Each image derives from (seed, split, index) alone, like the easy set.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from data.drawn.primitives import SPLITS, background, polygon

CLASSES = ('circle', 'ring', 'ring_dot', 'square', 'frame', 'triangle', 'triangle_hollow',
           'pentagon', 'hexagon', 'star5', 'star6', 'cross', 'tee', 'arrow', 'crescent',
           'half_disc', 'capsule', 'heart', 'red_drop', 'green_drop', 'blue_drop', 'ell',
           'hourglass', 'arc')
DROP_HUES = {'red_drop': 0, 'green_drop': 60, 'blue_drop': 120}  # OpenCV hue, 0-180
CLUTTER_HUES = (30, 90, 150)  # yellow, cyan, magenta drops: clutter, never labelled
MAX_HIDDEN = 0.55  # share of an object that later objects may cover
MIN_INSIDE = 0.4  # share of an object that must lie inside the image
# Zipf weights over a fixed shuffle of the classes, so look-alike pairs differ in frequency;
# the exponent sets the tail (the most common class 24 ** TAIL times the rarest)
TAIL = 0.6
RANKS = np.random.default_rng(2024).permutation(len(CLASSES))
WEIGHTS = 1.0 / (RANKS + 1.0) ** TAIL
WEIGHTS /= WEIGHTS.sum()


def _poly(mask, pts, value=255):
    cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], value)


def _bar(mask, x1, y1, x2, y2, value=255):
    cv2.rectangle(mask, (round(x1), round(y1)), (round(x2), round(y2)), value, -1)


def _drop(m, c, r):
    cv2.circle(m, (c, c + r // 3), max(1, int(r * 0.6)), 255, -1)
    _poly(m, [(c - r * 0.58, c + r * 0.2), (c, c - r), (c + r * 0.58, c + r * 0.2)])


def _heart(m, c, r):
    lobe = max(1, int(r * 0.5))
    cv2.circle(m, (c - lobe, c - lobe // 2), lobe, 255, -1)
    cv2.circle(m, (c + lobe, c - lobe // 2), lobe, 255, -1)
    _poly(m, [(c - 2 * lobe + 1, c - lobe // 4), (c + 2 * lobe - 1, c - lobe // 4), (c, c + r)])


def _hollow(m, c, r, n, phase, hole):
    pts = polygon((c, c), r, n, phase)
    _poly(m, pts)
    _poly(m, polygon((c, c), r * hole, n, phase), 0)


def _canonical(m, name, c, r):
    """Draw class `name` upright into m around (c, c) with outer radius r."""
    t = max(1, int(r * 0.3))  # stroke width of bars and rings
    if name == 'circle':
        cv2.circle(m, (c, c), r, 255, -1)
    elif name in ('ring', 'ring_dot'):
        cv2.circle(m, (c, c), r, 255, -1)
        cv2.circle(m, (c, c), max(1, int(r * 0.72)), 0, -1)
        if name == 'ring_dot':
            cv2.circle(m, (c, c), max(1, int(r * 0.32)), 255, -1)
    elif name == 'square':
        _bar(m, c - r * 0.75, c - r * 0.75, c + r * 0.75, c + r * 0.75)
    elif name == 'frame':
        _hollow(m, c, r, 4, math.pi / 4, 0.6)
    elif name == 'triangle':
        _poly(m, polygon((c, c), r, 3, -math.pi / 2))
    elif name == 'triangle_hollow':
        _hollow(m, c, r, 3, -math.pi / 2, 0.45)
    elif name in ('pentagon', 'hexagon'):
        _poly(m, polygon((c, c), r, 5 if name == 'pentagon' else 6, -math.pi / 2))
    elif name in ('star5', 'star6'):
        _poly(m, polygon((c, c), r, 5 if name == 'star5' else 6, -math.pi / 2, inner=0.5))
    elif name == 'cross':
        _bar(m, c - r, c - t / 2, c + r, c + t / 2)
        _bar(m, c - t / 2, c - r, c + t / 2, c + r)
    elif name == 'tee':
        _bar(m, c - r, c - r, c + r, c - r + t)
        _bar(m, c - t / 2, c - r, c + t / 2, c + r)
    elif name == 'ell':
        _bar(m, c - r * 0.6, c - r, c - r * 0.6 + t, c + r)
        _bar(m, c - r * 0.6, c + r - t, c + r * 0.6, c + r)
    elif name == 'arrow':
        _bar(m, c - r, c - t / 3, c + r * 0.2, c + t / 3)
        _poly(m, [(c + r * 0.1, c - r * 0.6), (c + r, c), (c + r * 0.1, c + r * 0.6)])
    elif name == 'crescent':
        cv2.circle(m, (c, c), r, 255, -1)
        cv2.circle(m, (c + int(r * 0.45), c), max(1, int(r * 0.85)), 0, -1)
    elif name == 'half_disc':
        cv2.ellipse(m, (c, c + r // 3), (r, r), 0, 180, 360, 255, -1)
    elif name == 'capsule':
        cv2.line(m, (c - r + t, c), (c + r - t, c), 255, 2 * t)  # OpenCV rounds thick ends
    elif name == 'heart':
        _heart(m, c, r)
    elif name.endswith('drop'):
        _drop(m, c, r)
    elif name == 'hourglass':
        _poly(m, [(c - r * 0.7, c - r), (c + r * 0.7, c - r), (c, c)])
        _poly(m, [(c - r * 0.7, c + r), (c + r * 0.7, c + r), (c, c)])
    elif name == 'arc':
        cv2.ellipse(m, (c, c + r // 3), (r, r), 0, 180, 360, 255, t)


def place(name, radius, ratio, angle, center, size):
    """The class drawn, squashed by ratio, rotated and moved to center: (mask window, x0, y0,
    pixels of the whole shape), the window clipped to the image; None when it falls outside."""
    c = int(math.ceil(radius * 1.1)) + 2
    local = np.zeros((2 * c + 1, 2 * c + 1), np.uint8)
    _canonical(local, name, c, radius)
    full = cv2.countNonZero(local) * ratio
    cos, sin = math.cos(angle), math.sin(angle)
    a = np.array([[cos, -sin * ratio], [sin, cos * ratio]])
    corners = (np.array([[0, 0], [2 * c, 0], [0, 2 * c], [2 * c, 2 * c]]) - c) @ a.T + center
    x0, y0 = np.maximum(np.floor(corners.min(0)).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(corners.max(0)).astype(int) + 1, size)
    if x1 <= x0 or y1 <= y0:
        return None
    shift = np.array(center) - a @ (c, c) - (x0, y0)
    window = cv2.warpAffine(local, np.hstack([a, shift[:, None]]), (int(x1 - x0), int(y1 - y0)),
                            flags=cv2.INTER_NEAREST)
    return window, int(x0), int(y0), full


def _colour_of_hue(rng, hue):
    hsv = np.array([[[(hue + rng.integers(-6, 7)) % 180, rng.integers(150, 256),
                      rng.integers(120, 256)]]], np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float32)


def _paint(img, win, on, rng, colour):
    """Fill the pixels `on` of the image window with a colour, its shading and noise."""
    ys, xs = np.nonzero(on)
    span = max(1, *on.shape)
    shade = 1 + rng.uniform(-0.25, 0.25) * ((xs - xs.mean()) / span)[:, None]
    noise = rng.normal(0, rng.uniform(3, 14), (len(xs), 3))
    y0, x0 = win
    img[y0 + ys, x0 + xs] = np.clip(colour * shade + noise, 0, 255).astype(np.uint8)


def _object_colour(rng, name, img, placed):
    if name in DROP_HUES:
        return _colour_of_hue(rng, DROP_HUES[name])
    window, x0, y0, _ = placed
    local = img[y0:y0 + window.shape[0], x0:x0 + window.shape[1]][window > 0].mean(0)
    colour = rng.uniform(0, 255, 3)
    if np.abs(colour - local).sum() < 60:  # faint, but never invisible
        colour = 255 - local
    return colour


def _radius(rng, size):
    """Half the object's extent: 3 to ~100 px at 320, log-uniform (as many from 3 to 10 px as
    from 30 to 100 px)."""
    top = size * 100 / 320
    return max(3, int(round(3 * (top / 3) ** rng.random())))


def _clutter(img, rng, size):
    """Things that are not a class: blobs, scribbles, text, drops of other colours."""
    for _ in range(rng.integers(0, 12)):
        kind = rng.integers(4)
        colour = rng.uniform(0, 255, 3).tolist()
        center = rng.integers(0, size, 2)
        r = _radius(rng, size)
        if kind == 0:  # irregular blob
            n = int(rng.integers(7, 14))
            a = np.sort(rng.uniform(0, 2 * math.pi, n))
            rad = r * rng.uniform(0.4, 1.0, n)
            pts = np.stack([center[0] + rad * np.cos(a), center[1] + rad * np.sin(a)], 1)
            _poly(img, pts, colour)
        elif kind == 1:  # scribble
            pts = center + np.cumsum(rng.normal(0, r / 2, (int(rng.integers(3, 8)), 2)), 0)
            cv2.polylines(img, [np.round(pts).astype(np.int32)], False, colour,
                          int(rng.integers(1, 4)))
        elif kind == 2:  # text
            text = ''.join(chr(int(c)) for c in rng.integers(65, 91, int(rng.integers(2, 6))))
            cv2.putText(img, text, (int(center[0]), int(center[1])), cv2.FONT_HERSHEY_SIMPLEX,
                        max(0.3, r / 25), colour, max(1, r // 12))
        else:  # a drop of a colour that is not a class
            placed = place('red_drop', r, rng.uniform(0.7, 1.4), rng.uniform(0, 2 * math.pi),
                           center, size)
            if placed is not None and placed[0].any():
                window, x0, y0, _ = placed
                hue = CLUTTER_HUES[int(rng.integers(len(CLUTTER_HUES)))]
                _paint(img, (y0, x0), window > 0, rng, _colour_of_hue(rng, hue))


def _lighting(img, rng, size):
    g = np.linspace(-1, 1, size, dtype=np.float32)
    ramp = g[None, :] if rng.random() < 0.5 else g[:, None]
    light = rng.uniform(0.6, 1.3) * (1 + rng.uniform(0, 0.4) * ramp)
    out = img.astype(np.float32) * light[..., None]
    out = 255 * (np.clip(out, 0, 255) / 255) ** rng.uniform(0.7, 1.4)
    out += rng.normal(0, rng.uniform(2, 12), out.shape)
    out = np.clip(out, 0, 255).astype(np.uint8)
    blur = rng.random()
    if blur < 0.35:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.5, 1.8))
    elif blur < 0.45:  # motion
        k = int(rng.integers(3, 8))
        kernel = np.zeros((k, k), np.float32)
        kernel[k // 2] = 1 / k
        rot = cv2.getRotationMatrix2D(((k - 1) / 2, (k - 1) / 2), rng.uniform(0, 180), 1)
        kernel = cv2.warpAffine(kernel, rot, (k, k))
        out = cv2.filter2D(out, -1, kernel / max(kernel.sum(), 1e-6))
    return out


def _fits(owner, on, visible, areas):
    """Would covering `on` leave every earlier object at least 1 - MAX_HIDDEN visible?"""
    covered = np.bincount(owner[on], minlength=len(areas) + 1)[1:]
    return bool(np.all(visible - covered >= (1 - MAX_HIDDEN) * areas))


def make_image(seed, split, index, size):
    """One image, its YOLO label lines and its class mask, from (seed, split, index) alone."""
    rng = np.random.default_rng([seed, SPLITS[split], index, 1])
    img = background(rng, size)
    _clutter(img, rng, size)
    owner = np.zeros((size, size), np.int16)
    visible, areas, objects = np.zeros(0), np.zeros(0), []
    n_objects = 0 if rng.random() < 0.03 else rng.integers(2, 15)
    for _ in range(n_objects):
        for _attempt in range(8):
            cls = int(rng.choice(len(CLASSES), p=WEIGHTS))
            r = _radius(rng, size)
            center = rng.uniform(-0.3 * r, size + 0.3 * r, 2)  # some cut by the border
            placed = place(CLASSES[cls], r, rng.uniform(0.7, 1.4), rng.uniform(0, 2 * math.pi),
                           center, size)
            if placed is None:
                continue
            window, x0, y0, full = placed
            on = np.zeros((size, size), bool)
            on[y0:y0 + window.shape[0], x0:x0 + window.shape[1]] = window > 0
            count = int(on.sum())
            if count < 10 or count < MIN_INSIDE * full or not _fits(owner, on, visible, areas):
                continue
            colour = _object_colour(rng, CLASSES[cls], img, placed)
            _paint(img, (y0, x0), window > 0, rng, colour)
            visible -= np.bincount(owner[on], minlength=len(areas) + 1)[1:]
            owner[on] = len(objects) + 1
            visible, areas = np.append(visible, count), np.append(areas, count)
            ys, xs = np.nonzero(window)
            objects.append((cls, x0 + xs.min(), y0 + ys.min(), x0 + xs.max() + 1,
                            y0 + ys.max() + 1))
            break
    img = _lighting(img, rng, size)
    lines = [f'{c} {(x1 + x2) / 2 / size:.6f} {(y1 + y2) / 2 / size:.6f} '
             f'{(x2 - x1) / size:.6f} {(y2 - y1) / size:.6f}' for c, x1, y1, x2, y2 in objects]
    classes = np.array([0] + [c + 1 for c, *_ in objects], np.uint8)
    return img, lines, classes[owner], int(rng.integers(55, 96))
