"""Generate the built-in dataset: shapes on textured, noisy backgrounds, with boxes and masks.

    python3 data/make_shapes.py [--out data/shapes] [--n-train 3000] [--n-val 300] [--seed 0]
    python3 data/make_shapes.py --hard      # the hard set (data/hard_shapes.py) in data/shapes-hard

Six classes (data/shapes.names): circle, square, triangle, star, cross, ring. Each image holds 1-8
objects of random color, size (6 px to half the image), aspect ratio and rotation, possibly
overlapping (but never hiding more than 40% of an earlier object), on one of several background
textures with noise, sometimes blurred, saved as JPEG; one image in twenty is pure background.
Labels are the tight boxes of each object's drawn pixels, in YOLO format (labels/); masks/ holds
one single-channel PNG per image, the class of the object on top at each pixel plus one (0 =
background; data/shapes-seg.names). Everything derives from (seed, split, index), so the same
seed gives the same bytes, whatever the number of workers.
"""
from __future__ import annotations

import argparse
import math
import time
from multiprocessing import Pool
from pathlib import Path

import cv2
import numpy as np

CLASSES = ('circle', 'square', 'triangle', 'star', 'cross', 'ring')
SPLITS = {'train': 0, 'val': 1}
HERE = Path(__file__).resolve().parent


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


def _scene(hard, seed, split, index, size):
    """(image, label lines, mask, JPEG quality) of one image of the easy or the hard set."""
    if hard:
        from data.hard_shapes import make_image as hard_image  # imports this file
        return hard_image(seed, split, index, size)
    return (*make_image(seed, split, index, size), 92)


def _write(job):
    out, seed, split, index, size, hard = job
    img, lines, mask, quality = _scene(hard, seed, split, index, size)
    stem = f'{index:06d}'
    cv2.imwrite(str(out / 'images' / split / f'{stem}.jpg'), img,
                [cv2.IMWRITE_JPEG_QUALITY, quality])
    (out / 'labels' / split / f'{stem}.txt').write_text(''.join(f'{x}\n' for x in lines))
    cv2.imwrite(str(out / 'masks' / split / f'{stem}.png'), mask)
    return len(lines)


def _init_worker():
    cv2.setNumThreads(0)  # one process per core already


def generate(out=HERE / 'shapes', n_train=3000, n_val=300, img_size=320, seed=0, workers=2,
             verbose=True, hard=False):
    t0 = time.time()
    out = Path(out)
    counts = {}
    for split, n in (('train', n_train), ('val', n_val)):
        for kind in ('images', 'labels', 'masks'):
            (out / kind / split).mkdir(parents=True, exist_ok=True)
        jobs = [(out, seed, split, i, img_size, hard) for i in range(n)]
        with Pool(workers, initializer=_init_worker) as pool:
            counts[split] = sum(pool.map(_write, jobs, chunksize=32))
        listing = ''.join(f'images/{split}/{i:06d}.jpg\n' for i in range(n))
        tmp = out / f'.{split}.txt.partial'  # renamed last: the list marks a whole split
        tmp.write_text(listing)
        tmp.replace(out / f'{split}.txt')
    seconds = time.time() - t0
    if verbose:
        kind = 'hard shapes' if hard else 'shapes'
        print(f'{kind} dataset in {out}: {n_train} train images ({counts["train"]} objects), '
              f'{n_val} val images ({counts["val"]} objects), {img_size} px, seed {seed}; '
              f'generated in {seconds:.1f} s')
    return seconds


def parse_opt(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument('--out', default=None, help='output folder (default: data/shapes, or '
                   'data/shapes-hard with --hard)')
    p.add_argument('--hard', action='store_true', help='the hard set: 24 classes, look-alikes, '
                   'small objects, clutter, a long tail (data/hard_shapes.py)')
    p.add_argument('--n-train', type=int, default=3000)
    p.add_argument('--n-val', type=int, default=300)
    p.add_argument('--img-size', type=int, default=320)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--workers', type=int, default=2)
    return p.parse_args(argv)


def main(argv=None):
    opt = parse_opt(argv)
    out = opt.out or HERE / ('shapes-hard' if opt.hard else 'shapes')
    generate(out, opt.n_train, opt.n_val, opt.img_size, opt.seed, opt.workers, hard=opt.hard)


if __name__ == '__main__':
    main()
