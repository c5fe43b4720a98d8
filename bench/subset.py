"""The same fixed sample of a dataset's training images for every run of a bench."""
from __future__ import annotations

import random
from pathlib import Path

from utils.datasets import image_files, parse_data_cfg


def subset_data(data, n, out):
    """A .data file whose training list holds n images of ``data``'s (a fixed sample)."""
    cfg = parse_data_cfg(data)
    files = image_files(cfg['train'])
    if n and n < len(files):
        files = sorted(random.Random(0).sample(files, n))
    out = Path(out).resolve()  # the .data names its files from wherever it is read
    listing = out / 'train_subset.txt'
    listing.write_text(''.join(f'{Path(f).resolve()}\n' for f in files))
    path = out / 'bench.data'
    names = out / 'bench.names'
    names.write_text(''.join(f'{x}\n' for x in cfg['names']))
    path.write_text(f"classes={cfg['classes']}\ntrain={listing}\nvalid={cfg['valid']}\n"
                    f'names={names}\n')
    return str(path)
