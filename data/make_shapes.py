"""Generate the built-in dataset: shapes on textured, noisy backgrounds, with boxes and masks.

    python3 data/make_shapes.py [--out data/shapes] [--n-train 3000] [--n-val 300] [--seed 0]
    python3 data/make_shapes.py --hard      # the hard set (data/drawn/hard.py), data/shapes-hard

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
from pathlib import Path

from data.drawn.writer import generate

HERE = Path(__file__).resolve().parent


def parse_opt(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument('--out', default=None, help='output folder (default: data/shapes, or '
                   'data/shapes-hard with --hard)')
    p.add_argument('--hard', action='store_true', help='the hard set: 24 classes, look-alikes, '
                   'small objects, clutter, a long tail (data/drawn/hard.py)')
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
