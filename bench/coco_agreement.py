"""Score test.py's predictions.json with pycocotools and print both tools' figures side by side.

    python3 test.py --weights weights/yolov3-mini.pt --save-json --name agree
    python3 bench/coco_agreement.py --data data/shapes.data --run runs/test/agree

Ground truth comes from the YOLO labels of the validation list (boxes in original pixels, image
ids = file stems, categories = class indices), exactly as test.py writes predictions.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


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


def main(argv=None):
    from pycocotools.coco import COCO  # noqa: PLC0415 (a test/bench-only dependency)
    from pycocotools.cocoeval import COCOeval  # noqa: PLC0415

    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--data', default='data/shapes.data')
    p.add_argument('--run', required=True, help='test.py run folder with predictions.json')
    opt = p.parse_args(argv)
    run = Path(opt.run)
    (run / 'ground_truth.json').write_text(json.dumps(ground_truth(opt.data)))
    coco = COCO(str(run / 'ground_truth.json'))
    ev = COCOeval(coco, coco.loadRes(str(run / 'predictions.json')), 'bbox')
    ev.params.maxDets = [1, 10, 300]  # test.py keeps up to 300 detections per image
    ev.evaluate()
    ev.accumulate()
    # precision[iou, recall, class, area, max_dets]: area 'all', 300 detections; -1 = no GT
    precision = ev.eval['precision'][:, :, :, 0, -1]
    ours = json.loads((run / 'metrics.json').read_text())
    result = {'test.py': {'map50': ours['map50'], 'map50_95': ours['map50_95']},
              'pycocotools': {'map50': float(precision[0][precision[0] > -1].mean()),
                              'map50_95': float(precision[precision > -1].mean())}}
    print(json.dumps(result, indent=2))
    (run / 'coco_agreement.json').write_text(json.dumps(result, indent=2))


if __name__ == '__main__':
    main()
