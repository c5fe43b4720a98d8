r"""Re-cluster anchors for a dataset and optionally write them into a cfg.

    python3 data/kmeans_anchors.py --data data/shapes.data --n 9 --img-size 320 \
        --cfg cfg/yolov3-mini.cfg --out runs/anchors/yolov3-mini-shapes.cfg

Label sizes are taken at the training scale (each image letterboxed to --img-size). k-means with
distance 1 - IoU (boxes sharing a center) clusters them; a genetic search then mutates the
anchors and keeps improvements in mean best IoU. Printed per anchor set: mean best IoU and the
best possible recall (BPR): the share of labels with some anchor whose width and height ratios
are both within --ratio (4, the anchor-matching rule of the training loss).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from models.cfg import parse_cfg, save_cfg
from models.darknet import Darknet
from utils.boxes import wh_iou
from utils.cli import friendly_errors
from utils.datasets import DataError, load_items, parse_data_cfg
from utils.errors import OptionError
from utils.options import Parser, at_least, image_size, keyword_options, positive_float


def label_sizes(data, img_size):
    """Widths and heights (pixels at the training scale) of every training label."""
    cfg = parse_data_cfg(data)
    items, _ = load_items(cfg['train'], cfg['classes'], prefix='train: ')
    wh = []
    for _, (h, w), labels in items:
        if labels:
            scale = img_size / max(h, w)
            wh.append(np.array(labels, np.float64)[:, 3:5] * [w * scale, h * scale])
    if not wh:
        raise DataError(f'{data}: the training set has no labels to cluster')
    wh = np.concatenate(wh)
    return wh[(wh >= 2).all(1)]  # sub-2-pixel boxes carry no shape information


def scores(anchors, wh, ratio=4.0):
    """(mean best IoU, BPR) of anchors (k, 2) for label sizes wh (n, 2)."""
    best_iou = wh_iou(wh, anchors).max(1)
    r = wh[:, None] / anchors[None]
    worst = np.maximum(r, 1 / r).max(2)  # each label vs each anchor: the worse of w and h ratios
    return float(best_iou.mean()), float((worst.min(1) < ratio).mean())


def kmeans_iou(wh, k, seed=0, iters=300):
    """k-means with 1 - IoU distance; k-means++ style seeding, deterministic for a seed."""
    rng = np.random.default_rng(seed)
    centers = [wh[rng.integers(len(wh))]]
    for _ in range(1, k):
        d = 1 - wh_iou(wh, np.array(centers)).max(1)
        centers.append(wh[rng.choice(len(wh), p=d ** 2 / (d ** 2).sum())])
    centers = np.array(centers)
    for _ in range(iters):
        assign = wh_iou(wh, centers).argmax(1)
        new = np.array([np.median(wh[assign == j], 0) if (assign == j).any() else centers[j]
                        for j in range(k)])
        if np.allclose(new, centers):
            break
        centers = new
    return centers


def evolve(anchors, wh, generations=1000, seed=0, sigma=0.1):
    """Random multiplicative mutations, kept when the mean best IoU improves."""
    rng = np.random.default_rng(seed)
    best, best_fit = anchors, scores(anchors, wh)[0]
    for _ in range(generations):
        mutation = np.clip(rng.normal(1, sigma, best.shape) * (rng.random(best.shape) < 0.9)
                           + (rng.random(best.shape) >= 0.9), 0.3, 3.0)
        candidate = np.maximum(best * mutation, 2.0)
        fit = scores(candidate, wh)[0]
        if fit > best_fit:
            best, best_fit = candidate, fit
    return best


def write_anchors(cfg_in, cfg_out, anchors):
    """Put the anchors into every [yolo] block; masks split them by head, small anchors to the
    head with the finest grid. Another anchor count per head changes the conv before each head
    (filters = anchors x (5 + classes)): said, since those convs then train from scratch."""
    blocks = parse_cfg(cfg_in)
    finest_first = yolo_blocks(cfg_in, blocks, len(anchors))
    per = len(anchors) // len(finest_first)
    text = ',  '.join(f'{w:.0f},{h:.0f}' for w, h in anchors)
    for rank, j in enumerate(finest_first):
        b, head = blocks[j], blocks[j - 1]
        b.options['anchors'] = text
        b.options['num'] = str(len(anchors))
        b.options['mask'] = ','.join(str(rank * per + k) for k in range(per))
        filters = str(per * (5 + b.get('classes')))
        if head.type == 'convolutional' and head.options.get('filters') != filters:
            print(f'{cfg_out}: the conv before the [yolo] of {cfg_in} line {b.line} now has '
                  f'filters={filters} ({per} anchors per head): it trains from scratch')
            head.options['filters'] = filters
    Darknet(blocks)  # the written cfg builds, or the error names its line
    Path(cfg_out).parent.mkdir(parents=True, exist_ok=True)
    save_cfg(blocks, cfg_out)


def yolo_blocks(cfg, blocks, n):
    """The [yolo] blocks finest first, checked to share ``n`` anchors evenly."""
    heads = _yolo_blocks_finest_first(blocks)
    if not heads or n % len(heads):
        raise DataError(f'{cfg}: {n} anchors do not split over {len(heads)} [yolo] heads (--n '
                        f'must be a multiple of {len(heads)})')
    return heads


def _yolo_blocks_finest_first(blocks):
    """Indexes (in blocks) of the [yolo] blocks, finest grid first."""
    model = Darknet(blocks)
    layers = model.info(256)['layers']
    order = sorted(model.yolo_layers, key=lambda j: -layers[j]['output'][1])
    return [j + 1 for j in order]


@keyword_options
def run(data='data/shapes.data', n=9, img_size=320, cfg=None, out=None, generations=1000,
        seed=0, ratio=4.0):
    if bool(cfg) != bool(out):
        raise OptionError('--cfg and --out go together: the anchors are written into a copy of '
                          '--cfg at --out')
    if cfg:
        yolo_blocks(cfg, parse_cfg(cfg), n)  # a bad cfg fails before the k-means
    wh = label_sizes(data, img_size)
    distinct = len(np.unique(wh, axis=0))
    if n > distinct:
        raise DataError(f'{data}: {distinct} distinct box sizes cannot make {n} anchors (--n); '
                        'give fewer, or a dataset with more boxes')
    anchors = kmeans_iou(wh, n, seed)
    iou0, bpr0 = scores(anchors, wh, ratio)
    anchors = evolve(anchors, wh, generations, seed)
    anchors = anchors[np.argsort(anchors.prod(1))]
    iou, bpr = scores(anchors, wh, ratio)
    print(f'{len(wh)} labels at {img_size} px: k-means mean IoU {iou0:.3f} BPR {bpr0:.3f}; '
          f'after evolution mean IoU {iou:.3f} BPR {bpr:.3f}')
    print('anchors = ' + ',  '.join(f'{w:.0f},{h:.0f}' for w, h in anchors))
    if cfg and out:
        write_anchors(cfg, out, anchors)
        print(f'wrote {out}')
    return anchors, iou, bpr


@friendly_errors
def main(argv=None):
    p = Parser(prog='data/kmeans_anchors.py', description=__doc__,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--data', default='data/shapes.data')
    p.add_argument('--n', type=at_least(1), default=9, help='number of anchors')
    p.add_argument('--img-size', type=image_size, default=320)
    p.add_argument('--cfg', default=None, help='cfg to write the anchors into (with --out)')
    p.add_argument('--out', default=None, help='output cfg path')
    p.add_argument('--generations', type=at_least(0), default=1000)
    p.add_argument('--ratio', type=positive_float, default=4.0, help='BPR width/height ratio limit')
    p.add_argument('--seed', type=int, default=0)
    opt = p.parse_args(argv)
    run(opt.data, opt.n, opt.img_size, opt.cfg, opt.out, opt.generations, opt.seed, opt.ratio)


if __name__ == '__main__':
    main()
