import json

import numpy as np
import pytest

from utils.metrics import DetectionStats, IOU_THRESHOLDS, average_precision, match_detections


def test_ap_by_hand():
    """2 objects, detections TP, FP, TP: recall .5 .5 1, precision 1 .5 .667 (envelope 1 .667 .667).
    101-point AP: recall points 0..0.50 (51) see precision 1, 0.51..1 (50) see 2/3."""
    recall, precision = np.array([0.5, 0.5, 1.0]), np.array([1.0, 0.5, 2 / 3])
    assert average_precision(recall, precision) == pytest.approx((51 + 50 * 2 / 3) / 101)
    stats = DetectionStats(1)
    labels = np.array([[0, 0, 0, 10, 10], [0, 20, 20, 30, 30]], float)
    det = np.array([[0, 0, 10, 10, 0.9, 0], [50, 50, 60, 60, 0.8, 0], [20, 20, 30, 30, 0.7, 0]])
    stats.update(det, labels)
    res = stats.compute()
    assert res['map50'] == pytest.approx((51 + 50 * 2 / 3) / 101)
    assert res['map50_95'] == pytest.approx(res['map50'])  # exact boxes: same at every IoU


def test_iou_threshold_ladder():
    """A box with IoU 0.62 is a true positive at thresholds 0.50, 0.55, 0.60 only."""
    labels = np.array([[0, 0, 0, 10, 10]], float)
    det = np.array([[0, 0, 10, 6.2, 0.9, 0]])  # IoU = 62 / 100
    correct = match_detections(det, labels)
    assert correct[0].tolist() == [True] * 3 + [False] * 7
    assert len(IOU_THRESHOLDS) == 10


def test_matching_is_greedy_by_confidence_and_class_aware():
    labels = np.array([[0, 0, 0, 10, 10], [1, 0, 0, 10, 10]], float)
    det = np.array([[0, 0, 10, 8, 0.9, 0],    # first by confidence: takes the class-0 object
                    [0, 0, 10, 10, 0.8, 0],   # better IoU but the object is taken: FP
                    [0, 0, 10, 10, 0.7, 1]])  # class 1 matches the class-1 object only
    correct = match_detections(det, labels)
    assert correct[:, 0].tolist() == [True, False, True]


def test_class_without_ground_truth_is_not_averaged():
    stats = DetectionStats(3)
    stats.update(np.array([[0, 0, 10, 10, 0.9, 0], [30, 30, 40, 40, 0.9, 2]]),
                 np.array([[0, 0, 0, 10, 10]], float))
    res = stats.compute()
    assert res['classes'].tolist() == [0]
    assert res['map50'] == pytest.approx(1.0)


def synthetic_set(seed=0, n_images=40, nc=3):
    """Ground truth and noisy detections: jittered true boxes, misses, duplicates, clutter."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(n_images):
        n = rng.integers(0, 6)
        xy = rng.uniform(0, 400, (n, 2))
        wh = rng.uniform(8, 120, (n, 2))
        labels = np.concatenate([rng.integers(0, nc, (n, 1)), xy, xy + wh], 1)
        dets = []
        for cls, x1, y1, x2, y2 in labels:
            if rng.random() < 0.85:
                jitter = rng.normal(0, rng.uniform(0.02, 0.25), 4) * np.tile([x2 - x1, y2 - y1], 2)
                c = cls if rng.random() < 0.9 else rng.integers(0, nc)
                dets.append([x1 + jitter[0], y1 + jitter[1], x2 + jitter[2], y2 + jitter[3],
                             rng.uniform(0.2, 1.0), c])
                if rng.random() < 0.2:  # duplicate
                    dets.append([x1 + 3, y1 - 2, x2 + 1, y2 + 4, rng.uniform(0.05, 0.9), cls])
        for _ in range(rng.integers(0, 4)):  # clutter
            p = rng.uniform(0, 400, 2)
            s = rng.uniform(8, 80, 2)
            dets.append([p[0], p[1], p[0] + s[0], p[1] + s[1], rng.uniform(0, 0.7),
                         rng.integers(0, nc)])
        det = np.array(dets, float).reshape(-1, 6)
        det[:, 2:4] = np.maximum(det[:, 2:4], det[:, :2] + 1)
        images.append((labels, det))
    return images


def test_agrees_with_pycocotools(tmp_path):
    pytest.importorskip('pycocotools')
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, nc = synthetic_set(), 3
    stats = DetectionStats(nc)
    gt = {'images': [], 'annotations': [], 'categories': [{'id': c} for c in range(nc)]}
    preds = []
    for i, (labels, det) in enumerate(images):
        stats.update(det, labels)
        gt['images'].append({'id': i, 'width': 600, 'height': 600})
        for cls, x1, y1, x2, y2 in labels:
            gt['annotations'].append({'id': len(gt['annotations']) + 1, 'image_id': i,
                                      'category_id': int(cls), 'iscrowd': 0,
                                      'bbox': [x1, y1, x2 - x1, y2 - y1],
                                      'area': (x2 - x1) * (y2 - y1)})
        preds += [{'image_id': i, 'category_id': int(c), 'score': float(s),
                   'bbox': [x1, y1, x2 - x1, y2 - y1]} for x1, y1, x2, y2, s, c in det]
    (tmp_path / 'gt.json').write_text(json.dumps(gt))
    (tmp_path / 'pred.json').write_text(json.dumps(preds))
    coco = COCO(str(tmp_path / 'gt.json'))
    ev = COCOeval(coco, coco.loadRes(str(tmp_path / 'pred.json')), 'bbox')
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    ours = stats.compute()
    assert 0.15 < ours['map50_95'] < 0.9  # a non-trivial case
    assert ours['map50_95'] == pytest.approx(ev.stats[0], abs=0.01)
    assert ours['map50'] == pytest.approx(ev.stats[1], abs=0.01)
    # by COCO's object sizes (areaRng small, medium, large = indices 1..3), ignored ground
    # truth and detections outside each range as COCOeval has them
    for k, size in enumerate(('small', 'medium', 'large'), 1):
        precision = ev.eval['precision'][:, :, :, k, -1]
        got = ours['by_size'][size]
        assert got['targets'] > 3, size
        assert got['map50_95'] == pytest.approx(ev.stats[2 + k], abs=0.01), size
        assert got['map50'] == pytest.approx(precision[0][precision[0] > -1].mean(), abs=0.01)


def test_a_batch_in_one_update_equals_its_images_one_by_one():
    images, nc = synthetic_set(), 3
    one_by_one, batched = DetectionStats(nc), DetectionStats(nc)
    for labels, det in images:
        one_by_one.update(det, labels)
    dets, labels = [d for _, d in images], [lb for lb, _ in images]
    batched.update(np.concatenate(dets), np.concatenate(labels),
                   np.repeat(np.arange(len(dets)), [len(d) for d in dets]),
                   np.repeat(np.arange(len(labels)), [len(lb) for lb in labels]))
    want, got = one_by_one.compute(), batched.compute()
    assert got['map50_95'] == want['map50_95'] and np.array_equal(got['ap'], want['ap'])
    assert np.array_equal(got['images_per_class'], want['images_per_class'])
    assert np.array_equal(batched.confusion.matrix, one_by_one.confusion.matrix)
    assert batched.confusion.matrix.sum() > 0 and 0 < want['map50'] < 1
