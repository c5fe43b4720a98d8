r"""Score test.py's predictions.json with pycocotools and print both tools' figures side by side.

    python3 test.py --weights weights/yolov3-mini.pt --save-json --name agree
    python3 bench/peers/coco_agreement.py --data data/shapes.data --run runs/test/agree
    python3 -m bench.peers.coco_agreement --data data/shapes-hard.data --run runs/test/agree-hard \
        --breakdown

--breakdown also prints pycocotools' AP and recall by object size (the square root of the box
area: under 16 px, 16-32, 32-96, over 96) and AP@0.5 per class: where a model's mAP is lost.
Ground truth comes from the YOLO labels of the validation list (boxes in original pixels, image
ids = file stems, categories = class indices), exactly as test.py writes predictions.

Feeds docs/results/evaluation.md, docs/results/real.md, docs/results/hard-benchmark.md.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from bench.provenance import write_result
from utils.evaluate import coco_image_id

from utils.datasets import load_items, parse_data_cfg


def ground_truth(data):
    cfg = parse_data_cfg(data)
    items, _ = load_items(cfg['valid'], cfg['classes'])
    gt = {'images': [], 'annotations': [],
          'categories': [{'id': c, 'name': n} for c, n in enumerate(cfg['names'])]}
    for path, (h, w), labels in items:
        image_id = coco_image_id(path)
        gt['images'].append({'id': image_id, 'width': w, 'height': h})
        for cls, cx, cy, bw, bh in labels:
            box = [(cx - bw / 2) * w, (cy - bh / 2) * h, bw * w, bh * h]
            gt['annotations'].append({'id': len(gt['annotations']) + 1, 'image_id': image_id,
                                      'category_id': int(cls), 'bbox': box, 'iscrowd': 0,
                                      'area': box[2] * box[3]})
    return gt


# box areas in original pixels; under 16 px is the hard set's hardest share
AREAS = {'under 16 px': [0, 16 ** 2], '16-32 px': [16 ** 2, 32 ** 2],
         '32-96 px': [32 ** 2, 96 ** 2], 'over 96 px': [96 ** 2, 1e10]}


def mean_valid(a):
    """pycocotools marks 'no ground truth here' with -1."""
    a = a[a > -1]
    return float(a.mean()) if a.size else float('nan')


def coco_eval(ground_truth_file, predictions_file):
    """pycocotools' bbox evaluation of one run, with test.py's detection limit and AREAS."""
    from pycocotools.coco import COCO  # a test/bench-only dependency
    from pycocotools.cocoeval import COCOeval

    coco = COCO(str(ground_truth_file))
    ev = COCOeval(coco, coco.loadRes(str(predictions_file)), 'bbox')
    ev.params.maxDets = [1, 10, 300]  # test.py keeps up to 300 detections per image
    ev.params.areaRng = [[0, 1e10], *AREAS.values()]
    ev.params.areaRngLbl = ['all', *AREAS]
    ev.evaluate()
    ev.accumulate()
    return ev, coco


def breakdown(ev, coco):
    """Rows (objects, count, AP@0.5, AP@0.5:0.95, recall@0.5) per size, then (class, count,
    AP@0.5) per class."""
    # precision[iou, recall, class, area, dets], recall[iou, class, area, dets]; 300 dets
    precision, recall = ev.eval['precision'][..., -1], ev.eval['recall'][..., -1]
    areas = np.array([a['area'] for a in coco.dataset['annotations']])
    classes = np.array([a['category_id'] for a in coco.dataset['annotations']])
    by_size = [(label, int(((areas >= low) & (areas < high)).sum()),
                mean_valid(precision[0, :, :, a]), mean_valid(precision[..., a]),
                mean_valid(recall[0, :, a]))
               for a, (label, (low, high)) in enumerate(zip(ev.params.areaRngLbl,
                                                            ev.params.areaRng))]
    by_class = [(cat['name'], int((classes == cat['id']).sum()), mean_valid(precision[0, :, k, 0]))
                for k, cat in enumerate(coco.loadCats(ev.params.catIds))]
    return by_size, by_class


def print_breakdown(by_size, by_class):
    print('| objects | count | AP@0.5 | AP@0.5:0.95 | recall@0.5 (300 dets) |')
    print('|---|---|---|---|---|')
    for label, count, ap50, ap, found in by_size:
        print(f'| {label} | {count} | {ap50:.3f} | {ap:.3f} | {found:.3f} |')
    print('\n| class | objects | AP@0.5 |\n|---|---|---|')
    for name, count, ap50 in by_class:
        print(f'| {name} | {count} | {ap50:.3f} |')


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--data', default='data/shapes.data')
    p.add_argument('--run', required=True, help='test.py run folder with predictions.json')
    p.add_argument('--breakdown', action='store_true', help='AP by object size and by class')
    opt = p.parse_args(argv)
    run = Path(opt.run)
    (run / 'ground_truth.json').write_text(json.dumps(ground_truth(opt.data)))
    ev, coco = coco_eval(run / 'ground_truth.json', run / 'predictions.json')
    precision = ev.eval['precision'][:, :, :, 0, -1]  # area 'all', 300 detections
    ours = json.loads((run / 'metrics.json').read_text())
    result = {'test.py': {'map50': ours['map50'], 'map50_95': ours['map50_95']},
              'pycocotools': {'map50': mean_valid(precision[0]),
                              'map50_95': mean_valid(precision)}}
    print(json.dumps(result, indent=2))
    write_result(run / 'coco_agreement.json', result)
    if opt.breakdown:
        print_breakdown(*breakdown(ev, coco))


if __name__ == '__main__':
    main()
