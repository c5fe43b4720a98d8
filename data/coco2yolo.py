"""Convert COCO instance annotations (json) to YOLO txt labels.

    python3 data/coco2yolo.py --json annotations/instances_val2017.json --out coco/labels/val2017

COCO category ids (1..90 with gaps) become contiguous class indices in id order, written as a
.names file beside the labels; crowd annotations are skipped (COCOeval ignores them too). One
label file per image, empty for images without objects; an image list with --images DIR.
"""
from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from utils.files import atomic_write_text


def convert(json_path, out_dir, images_dir=None):
    coco = json.loads(Path(json_path).read_text())
    cats = sorted(coco['categories'], key=lambda c: c['id'])
    index = {c['id']: i for i, c in enumerate(cats)}
    per_image = defaultdict(list)
    skipped = 0
    for a in coco['annotations']:
        if a.get('iscrowd', 0):
            skipped += 1
            continue
        per_image[a['image_id']].append(a)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n_labels = 0
    for img in coco['images']:
        w, h = img['width'], img['height']
        lines = []
        for a in per_image.get(img['id'], []):
            x, y, bw, bh = a['bbox']
            if bw <= 0 or bh <= 0:
                continue
            lines.append(f"{index[a['category_id']]} {(x + bw / 2) / w:.6f} {(y + bh / 2) / h:.6f} "
                         f'{bw / w:.6f} {bh / h:.6f}')
        n_labels += len(lines)
        (out / f"{Path(img['file_name']).stem}.txt").write_text(''.join(f'{x}\n' for x in lines))
    atomic_write_text(out.parent / f'{out.name}.names', ''.join(f"{c['name']}\n" for c in cats))
    if images_dir:
        listing = ''.join(f"{Path(images_dir).resolve() / img['file_name']}\n"
                          for img in coco['images'])
        atomic_write_text(out.parent / f'{out.name}.txt', listing)
    print(f"{json_path}: {len(coco['images'])} images, {n_labels} labels, {len(cats)} classes, "
          f'{skipped} crowd annotations skipped -> {out}')
    return n_labels


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--json', required=True, help='COCO instances json')
    p.add_argument('--out', required=True, help='folder for the label files')
    p.add_argument('--images', default=None, help='image folder, to also write an image list')
    opt = p.parse_args(argv)
    convert(opt.json, opt.out, opt.images)


if __name__ == '__main__':
    main()
