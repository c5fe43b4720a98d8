"""Convert Pascal VOC xml annotations to YOLO txt labels.

    python3 data/voc2yolo.py --voc VOCdevkit/VOC2007 --split trainval

Reads ImageSets/Main/<split>.txt and Annotations/<id>.xml; writes labels/<id>.txt beside
JPEGImages/ (where the loader looks for them, as darknet does) and <split>.txt listing the images.
VOC pixel coordinates are 1-based and inclusive, so a box spans xmin-1 .. xmax. Objects marked
difficult are skipped unless --keep-difficult.
"""
from __future__ import annotations

import argparse
import xml.etree.ElementTree as ET
from pathlib import Path

from utils.files import atomic_write_text

VOC_NAMES = ('aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat', 'chair', 'cow',
             'diningtable', 'dog', 'horse', 'motorbike', 'person', 'pottedplant', 'sheep', 'sofa',
             'train', 'tvmonitor')


def xml_to_lines(xml_path, names=VOC_NAMES, keep_difficult=False):
    root = ET.parse(xml_path).getroot()
    w = float(root.find('size/width').text)
    h = float(root.find('size/height').text)
    lines = []
    for obj in root.iter('object'):
        name = obj.find('name').text.strip()
        difficult = obj.find('difficult')
        if name not in names or (not keep_difficult and difficult is not None
                                 and int(difficult.text) == 1):
            continue
        b = obj.find('bndbox')
        x1, y1, x2, y2 = (float(b.find(k).text) for k in ('xmin', 'ymin', 'xmax', 'ymax'))
        x1, y1 = x1 - 1, y1 - 1
        lines.append(f'{names.index(name)} {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} '
                     f'{(x2 - x1) / w:.6f} {(y2 - y1) / h:.6f}')
    return lines


def convert(voc_dir, split, keep_difficult=False):
    voc = Path(voc_dir)
    ids = [s.strip() for s in (voc / 'ImageSets' / 'Main' / f'{split}.txt').read_text().split()]
    (voc / 'labels').mkdir(parents=True, exist_ok=True)
    n_labels = 0
    for i in ids:
        lines = xml_to_lines(voc / 'Annotations' / f'{i}.xml', keep_difficult=keep_difficult)
        n_labels += len(lines)
        (voc / 'labels' / f'{i}.txt').write_text(''.join(f'{x}\n' for x in lines))
    images = ''.join(f"{(voc / 'JPEGImages' / f'{i}.jpg').resolve()}\n" for i in ids)
    atomic_write_text(voc / f'{split}.txt', images)  # last: the list marks a whole split
    print(f"{voc} {split}: {len(ids)} images, {n_labels} labels -> {voc / 'labels'}")
    return n_labels


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--voc', required=True, help='e.g. VOCdevkit/VOC2007')
    p.add_argument('--split', default='trainval')
    p.add_argument('--keep-difficult', action='store_true')
    opt = p.parse_args(argv)
    convert(opt.voc, opt.split, opt.keep_difficult)


if __name__ == '__main__':
    main()
