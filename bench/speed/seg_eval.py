"""What scoring a segmentation batch costs: the class map (resize + argmax) and the confusion
matrix, as the toolkit computes them against the plain torch way (resize over planes, softmax,
argmax; boolean-gathered bincount). All variants take turns.

    python3 -m bench.speed.seg_eval --batch 16 --classes 7 --size 320 --stride 4

Feeds no results page: commit 34344c2, which made scoring 4-5x faster, quotes its figures.
"""
from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from models.layers import class_map
from utils.metrics import SegmentationStats
from utils.timing import interleaved


def plain_map(logits, size):
    up = F.interpolate(logits, size=size, mode='bilinear', align_corners=False)
    return up.softmax(1).argmax(1)


def plain_update(pred, truth, nc):
    valid = truth != 255
    return (truth[valid].long() * nc + pred[valid].long()).bincount(minlength=nc * nc)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--batch', type=int, default=16)
    p.add_argument('--classes', type=int, default=7)
    p.add_argument('--size', type=int, default=320)
    p.add_argument('--stride', type=int, default=4)
    p.add_argument('--runs', type=int, default=10)
    opt = p.parse_args(argv)
    side, size = opt.size // opt.stride, (opt.size, opt.size)
    logits = torch.randn(opt.batch, opt.classes, side, side)
    truth = torch.randint(0, opt.classes, (opt.batch, *size), dtype=torch.uint8)
    truth[:, :8] = 255
    pred = class_map(logits, size)
    # softmax can round two near-equal logits to one probability: the maps differ at such ties
    differ = (pred != plain_map(logits, size)).float().mean().item()
    print(f'pixels whose class differs between the two ways: {differ:.2e}')
    stats = SegmentationStats(opt.classes)
    runners = [('class map: plain', lambda: lambda: plain_map(logits, size)),
               ('class map: toolkit', lambda: lambda: class_map(logits, size)),
               ('confusion: plain', lambda: lambda: plain_update(pred, truth, opt.classes)),
               ('confusion: toolkit', lambda: lambda: stats.update(pred, truth))]
    for (name, _), (median, p90) in zip(runners, interleaved(runners, opt.runs, 2)):
        print(f'{name:20s} {median:8.1f} ms  (p90 {p90:.1f}) per batch of {opt.batch}')


if __name__ == '__main__':
    main()
