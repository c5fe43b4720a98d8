"""Write a drawn-shapes dataset: images/, labels/ (YOLO format) and masks/ (one PNG per image,
the class of the object on top at each pixel plus one; 0 = background) per split, and the split
lists train.txt / val.txt. Everything derives from (seed, split, index), so the same seed gives
the same bytes whatever the number of workers.

A split is whole or absent: its files are written into a hidden staging folder, moved into
place when all are written, and its list is written last; a killed run leaves no list, so the
next use of the .data generates the split again."""
from __future__ import annotations

import shutil
import time
from multiprocessing import Pool
from pathlib import Path

import cv2

from data.drawn import easy, hard

KINDS = ('images', 'labels', 'masks')
DEFAULT_OUT = Path(__file__).resolve().parents[1] / 'shapes'


def _scene(is_hard, seed, split, index, size):
    """(image, label lines, mask, JPEG quality) of one image of the easy or the hard set."""
    if is_hard:
        return hard.make_image(seed, split, index, size)
    return (*easy.make_image(seed, split, index, size), 92)


def _write(job):
    stage, seed, split, index, size, is_hard = job
    img, lines, mask, quality = _scene(is_hard, seed, split, index, size)
    stem = f'{index:06d}'
    jpg_ok = cv2.imwrite(str(stage / 'images' / f'{stem}.jpg'), img,
                         [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not (jpg_ok and cv2.imwrite(str(stage / 'masks' / f'{stem}.png'), mask)):
        raise OSError(f'{stage}: image {stem} could not be written (disk full?)')  # cv2: False
    (stage / 'labels' / f'{stem}.txt').write_text(''.join(f'{x}\n' for x in lines))
    return len(lines)


def _init_worker():
    cv2.setNumThreads(0)  # one process per core already


def write_split(out, split, n, img_size, seed, workers, is_hard):
    """One split, whole or absent; returns its number of objects."""
    stage = out / f'.{split}.partial'
    shutil.rmtree(stage, ignore_errors=True)  # what a killed run left
    for kind in KINDS:
        (stage / kind).mkdir(parents=True)
    jobs = [(stage, seed, split, i, img_size, is_hard) for i in range(n)]
    with Pool(workers, initializer=_init_worker) as pool:
        objects = sum(pool.map(_write, jobs, chunksize=32))
    (out / f'{split}.txt').unlink(missing_ok=True)  # no list while the folders change
    for kind in KINDS:
        final = out / kind / split
        final.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(final, ignore_errors=True)
        (stage / kind).rename(final)
    shutil.rmtree(stage)
    listing = ''.join(f'images/{split}/{i:06d}.jpg\n' for i in range(n))
    tmp = out / f'.{split}.txt.partial'  # renamed last: the list marks a whole split
    tmp.write_text(listing)
    tmp.replace(out / f'{split}.txt')
    return objects


def generate(out=DEFAULT_OUT, n_train=3000, n_val=300, img_size=320, seed=0, workers=2,
             verbose=True, hard=False):
    """Write the easy (or, with hard, the hard) set under out; returns the seconds it took."""
    t0 = time.time()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    counts = {split: write_split(out, split, n, img_size, seed, workers, hard)
              for split, n in (('train', n_train), ('val', n_val))}
    seconds = time.time() - t0
    if verbose:
        kind = 'hard shapes' if hard else 'shapes'
        print(f'{kind} dataset in {out}: {n_train} train images ({counts["train"]} objects), '
              f'{n_val} val images ({counts["val"]} objects), {img_size} px, seed {seed}; '
              f'generated in {seconds:.1f} s')
    return seconds
