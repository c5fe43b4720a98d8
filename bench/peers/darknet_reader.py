r"""Score a darknet cfg + .weights with an independent reader: OpenCV 4.x's readNetFromDarknet,
scored by pycocotools, beside test.py --darknet on the same photos.

    python3 test.py --data data/coco128.data --cfg cfg/yolov3-tiny.cfg \
        --weights weights/yolov3-tiny.weights --img-size 416 --darknet --save-json --name dk
    python3 -m bench.peers.darknet_reader --data data/coco128.data --cfg cfg/yolov3-tiny.cfg \
        --weights weights/yolov3-tiny.weights --img-size 416 --run runs/test/dk

OpenCV decodes the [yolo] layers itself (it reads the cfg and weights with its own parser) and
is given darknet's `detector map` conventions: the photo stretched to the input (bilinear,
blobFromImage), class scores (objectness x class probability) above 0.005, NMS 0.45 per class.
OpenCV zeroes every score under a [yolo] layer's `thresh` (0.2 unless the cfg sets one), so it
reads a copy of the cfg with `thresh` at the score threshold. Both runs are scored by pycocotools
with test.py's limit of 300 detections per photo; also printed: test.py's own figures. Boxes are
clipped to the photo, as darknet's `detector valid` writes them for COCO and as test.py does; the
unclipped figure is printed too (darknet's `detector map` compares unclipped boxes: up to half a
point of mAP@0.5:0.95 on Yolo-Fastest 1.1, docs/results/real.md).

Feeds docs/results/real.md.
"""
from __future__ import annotations

import argparse
import json
import re
import tempfile
from pathlib import Path

import cv2
import numpy as np

from bench.provenance import write_result
from bench.peers.coco_agreement import coco_eval, ground_truth, mean_valid
from utils.datasets import image_files, parse_data_cfg
from utils.evaluate import coco_image_id

CONF, NMS = 0.005, 0.45


def cfg_with_thresh(cfg, thresh, folder):
    """A copy of cfg whose [yolo] blocks all say thresh=<thresh>."""
    out = []
    for line in Path(cfg).read_text().splitlines():
        if re.match(r'\s*thresh\s*=', line):
            continue
        out.append(line)
        if line.strip() == '[yolo]':
            out.append(f'thresh={thresh}')
    path = Path(folder) / Path(cfg).name
    path.write_text('\n'.join(out) + '\n')
    return path


def detect(net, image, size):
    """Per-class detections of one photo, NMS done: (boxes xywh in its pixels, scores, classes)."""
    h0, w0 = image.shape[:2]
    net.setInput(cv2.dnn.blobFromImage(image, 1 / 255, (size, size), swapRB=True, crop=False))
    rows = np.concatenate([o.reshape(-1, o.shape[-1]) for o in
                           net.forward(net.getUnconnectedOutLayersNames())])
    anchor, cls = np.nonzero(rows[:, 5:] > CONF)
    scores = rows[anchor, 5 + cls]
    cx, cy, w, h = (rows[anchor, k] for k in range(4))
    boxes = np.stack([(cx - w / 2) * w0, (cy - h / 2) * h0, w * w0, h * h0], 1)
    keep = cv2.dnn.NMSBoxesBatched(boxes.tolist(), scores.tolist(), cls.tolist(), CONF, NMS)
    keep = np.array(keep, int).reshape(-1)
    return boxes[keep], scores[keep], cls[keep]


def clipped(boxes, image):
    """xywh boxes cut to the photo."""
    h0, w0 = image.shape[:2]
    x1, y1 = boxes[:, 0].clip(0, w0), boxes[:, 1].clip(0, h0)
    x2 = (boxes[:, 0] + boxes[:, 2]).clip(0, w0)
    y2 = (boxes[:, 1] + boxes[:, 3]).clip(0, h0)
    return np.stack([x1, y1, x2 - x1, y2 - y1], 1)


def predictions(cfg, weights, source, size):
    """COCO results of every photo: (boxes clipped to the photo, boxes as decoded)."""
    with tempfile.TemporaryDirectory() as tmp:
        net = cv2.dnn.readNetFromDarknet(str(cfg_with_thresh(cfg, CONF, tmp)), str(weights))
    out = ([], [])
    for path in image_files(source):
        image = cv2.imread(str(path))
        boxes, scores, classes = detect(net, image, size)
        order = np.argsort(-scores)[:300]
        for rows, kept in zip(out, (clipped(boxes, image), boxes)):
            rows += [{'image_id': coco_image_id(path), 'category_id': int(classes[k]),
                      'score': float(scores[k]), 'bbox': [float(v) for v in kept[k]]}
                     for k in order]
    return out


def scores(ground_truth_file, predictions_file):
    ev, _ = coco_eval(ground_truth_file, predictions_file)
    precision = ev.eval['precision'][:, :, :, 0, -1]  # area 'all', 300 detections
    return {'map50': mean_valid(precision[0]), 'map50_95': mean_valid(precision)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--data', required=True)
    p.add_argument('--cfg', required=True)
    p.add_argument('--weights', required=True)
    p.add_argument('--img-size', type=int, required=True)
    p.add_argument('--run', required=True, help="test.py --darknet --save-json's run folder")
    opt = p.parse_args(argv)
    if not hasattr(cv2.dnn, 'readNetFromDarknet'):
        raise SystemExit(f'OpenCV {cv2.__version__} has no darknet reader (OpenCV 4.x has)')
    run = Path(opt.run)
    (run / 'ground_truth.json').write_text(json.dumps(ground_truth(opt.data)))
    source = parse_data_cfg(opt.data)['valid']
    result = {}
    runs = predictions(opt.cfg, opt.weights, source, opt.img_size)
    for rows, name in zip(runs, ('opencv + pycocotools', 'opencv, boxes unclipped')):
        path = run / f'opencv_{len(result)}.json'
        path.write_text(json.dumps(rows))
        result[name] = scores(run / 'ground_truth.json', path)
    ours = json.loads((run / 'metrics.json').read_text())
    result['test.py + pycocotools'] = scores(run / 'ground_truth.json', run / 'predictions.json')
    result['test.py'] = {'map50': ours['map50'], 'map50_95': ours['map50_95']}
    result |= {'scoring': ours.get('scoring'), 'opencv': cv2.__version__}
    print(json.dumps(result, indent=2))
    write_result(run / 'darknet_reader.json', result)


if __name__ == '__main__':
    main()
