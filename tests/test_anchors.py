import re

import numpy as np
import pytest

from data.kmeans_anchors import kmeans_iou, run, scores
from models import Darknet, parse_cfg
from tests.conftest import ROOT, cfg_path
from tests.test_datasets import write_item
from utils.datasets import DataError, parse_data_cfg


def test_kmeans_finds_planted_sizes():
    rng = np.random.default_rng(0)
    planted = np.array([[10, 10], [30, 60], [90, 45]], float)
    wh = np.concatenate([p * rng.uniform(0.95, 1.05, (200, 2)) for p in planted])
    found = kmeans_iou(wh, 3)
    found = found[np.argsort(found.prod(1))]
    assert np.allclose(found, planted, rtol=0.05)
    iou, bpr = scores(found, wh)
    assert iou > 0.9 and bpr == 1.0
    assert scores(np.array([[1.0, 1.0]]), wh)[1] == 0.0  # a 1x1 anchor is >4x off every label


def test_cli_writes_anchors_into_cfg(tmp_path):
    root = tmp_path / 'set'
    for k in range(12):  # 9 distinct sizes in three groups: 9 anchors
        size = (8, 10, 12, 22, 26, 30, 64, 72, 80)[k % 9]
        write_item(root, f'i{k}', [(0, 5, 5, 5 + size, 5 + size)], size=(96, 96))
    (tmp_path / 'a.names').write_text('\n'.join('abcdef') + '\n')
    data = tmp_path / 'a.data'
    data.write_text('classes=6\ntrain=set/images\nvalid=set/images\nnames=a.names\n')
    out = tmp_path / 'mini-anchors.cfg'
    anchors, iou, _ = run(str(data), n=9, img_size=96, cfg=str(cfg_path('yolov3-mini')),
                          out=str(out), generations=50)
    assert iou > 0.95
    blocks = parse_cfg(out)
    model = Darknet(blocks)
    layers = model.info(96)['layers']
    by_height = sorted(model.yolo_layers, key=lambda j: -layers[j]['output'][1])
    masks = [blocks[j + 1].get('mask') for j in by_height]
    assert masks == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]  # finest grid gets the smallest anchors
    written = np.array(blocks[by_height[0] + 1].get('anchors')).reshape(-1, 2)
    assert np.allclose(written, anchors.round(), atol=0.5)


@pytest.mark.parametrize('name', [p.name for p in sorted((ROOT / 'data').glob('*.data'))
                                  if p.name != 'shapes.data'])
def test_data_templates_parse(name):
    """Each template parses; one whose files come from data.fetch names the command to run
    where they have not been fetched yet."""
    path = ROOT / 'data' / name
    fetch = re.search(r'^fetch\s*=\s*(\S+)', path.read_text(), re.M)
    try:
        cfg = parse_data_cfg(path)
    except DataError as e:
        assert fetch and f'python3 -m data.fetch {fetch.group(1)}' in str(e), str(e)
        return
    assert len(cfg['names']) == cfg['classes']


def test_kmeans_into_a_cfg_with_another_anchor_count_writes_a_cfg_that_builds(tiny_data,
                                                                              tmp_path):
    out = tmp_path / 'k6.cfg'
    run(str(tiny_data), n=6, img_size=128, cfg=str(ROOT / 'cfg' / 'yolov3-mini.cfg'),
        out=str(out), generations=5)
    model = Darknet(out)  # 2 anchors per head: the head convs were resized to match
    assert all(model.module_list[j].na == 2 for j in model.yolo_layers)
