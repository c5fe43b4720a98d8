"""bench/peers/coco_agreement.py --breakdown: sizes and classes land in the right rows."""
import json

import pytest

from bench.peers.coco_agreement import breakdown, coco_eval


def test_breakdown_puts_each_object_in_its_size_and_class(tmp_path):
    pytest.importorskip('pycocotools')
    # one 10 px square found exactly (class 0), one 120 px square missed (class 1)
    boxes = {1: ([5, 5, 10, 10], 0), 2: ([50, 50, 120, 120], 1)}
    gt = {'images': [{'id': 1, 'width': 320, 'height': 320}],
          'categories': [{'id': 0, 'name': 'small'}, {'id': 1, 'name': 'large'}],
          'annotations': [{'id': i, 'image_id': 1, 'category_id': c, 'bbox': b, 'iscrowd': 0,
                           'area': b[2] * b[3]} for i, (b, c) in boxes.items()]}
    found = [{'image_id': 1, 'category_id': 0, 'bbox': [5, 5, 10, 10], 'score': 0.9},
             {'image_id': 1, 'category_id': 1, 'bbox': [200, 200, 30, 30], 'score': 0.8}]
    (tmp_path / 'gt.json').write_text(json.dumps(gt))
    (tmp_path / 'pred.json').write_text(json.dumps(found))
    by_size, by_class = breakdown(*coco_eval(tmp_path / 'gt.json', tmp_path / 'pred.json'))
    rows = {label: rest for label, *rest in by_size}
    assert rows['all'] == pytest.approx([2, 0.5, 0.5, 0.5])
    assert rows['under 16 px'] == pytest.approx([1, 1.0, 1.0, 1.0])
    assert rows['over 96 px'] == pytest.approx([1, 0.0, 0.0, 0.0])
    assert rows['16-32 px'][0] == 0
    assert by_class == [('small', 1, pytest.approx(1.0)), ('large', 1, pytest.approx(0.0))]
