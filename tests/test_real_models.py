"""The real COCO-80 releases on real photos (fetched from ../shared/real): scored as stored, and
as darknet scores them, against OpenCV's independent darknet reader."""
import json

import cv2
import numpy as np
import pytest
import torch

import test as evaluation
from models.weights import load_model
from tests.conftest import ROOT, needs_real
from utils.datasets import YoloDataset
from utils.evaluate import _to_original

pytestmark = needs_real

# test.py's defaults (letterbox, 0.001, NMS 0.6) on the first 16 val2017 photos, 2026-12-07
YOLOV3_TINY_16 = {'map50': 0.39472, 'map50_95': 0.22912,
                  'darknet': {'map50': 0.43790, 'map50_95': 0.24418}}
# each photo's most confident detection: (class, score, COCO box x, y, w, h in its pixels)
TOP = {139: (62, 0.9280, [10.1, 166.1, 140.6, 100.9]),
       285: (21, 0.2548, [71.3, 87.0, 514.7, 553.0]),
       632: (59, 0.3997, [0.0, 280.1, 385.9, 202.9]),
       724: (11, 0.9942, [119.3, 83.5, 134.4, 135.6]),
       776: (77, 0.4008, [3.6, 202.0, 331.6, 438.0]),
       785: (0, 0.9868, [281.7, 60.5, 213.4, 315.3]),
       802: (72, 0.7168, [246.0, 193.0, 150.1, 337.1]),
       872: (0, 0.8422, [151.4, 127.5, 226.9, 487.4]),
       885: (0, 0.4921, [292.0, 122.3, 141.0, 273.0]),
       1000: (0, 0.9851, [521.1, 200.3, 115.8, 279.7]),
       1268: (0, 0.8801, [496.6, 98.3, 143.4, 320.1]),
       1296: (0, 0.4647, [5.7, 26.5, 413.5, 591.0]),
       1353: (0, 0.2842, [191.0, 166.6, 85.4, 98.0]),
       1425: (48, 0.3682, [62.7, 192.0, 381.3, 201.7]),
       1490: (0, 0.4701, [466.5, 156.8, 23.9, 46.8]),
       1503: (63, 0.9795, [0.0, 92.7, 130.4, 146.2])}


def score(real, tmp_path, **kw):
    w = real['weights']
    return evaluation.run(data=str(real['coco16']), weights=str(w / 'yolov3-tiny.weights'),
                          cfg=str(ROOT / 'cfg' / 'yolov3-tiny.cfg'), img_size=416, workers=0,
                          project=str(tmp_path), plots=False, verbose=False, **kw)


def test_yolov3_tiny_on_16_val2017_photos_scores_as_stored(real, tmp_path):
    m = score(real, tmp_path, save_json=True, name='default')
    assert m['map50'] == pytest.approx(YOLOV3_TINY_16['map50'], abs=1e-4)
    assert m['map50_95'] == pytest.approx(YOLOV3_TINY_16['map50_95'], abs=1e-4)
    best = {}
    for d in json.loads((tmp_path / 'default' / 'predictions.json').read_text()):
        if d['score'] > best.get(d['image_id'], {'score': -1})['score']:
            best[d['image_id']] = d
    assert set(best) == set(TOP)
    for image, (cls, conf, box) in TOP.items():
        assert best[image]['category_id'] == cls
        assert best[image]['score'] == pytest.approx(conf, abs=2e-3)
        assert np.abs(np.array(best[image]['bbox']) - box).max() < 1.0  # pixels
    dk = score(real, tmp_path, darknet=True, name='darknet')
    assert dk['scoring'] == {'darknet': True, 'resize': 'stretch', 'conf_thres': 0.005,
                             'iou_thres': 0.45, 'img_size': 416}
    assert dk['map50'] == pytest.approx(YOLOV3_TINY_16['darknet']['map50'], abs=1e-4)
    assert dk['map50_95'] == pytest.approx(YOLOV3_TINY_16['darknet']['map50_95'], abs=1e-4)


@pytest.mark.skipif(not hasattr(cv2, 'dnn') or not hasattr(cv2.dnn, 'readNetFromDarknet'),
                    reason='this OpenCV has no darknet reader (OpenCV 4.x has)')
@pytest.mark.parametrize('name,size', [('yolov3-tiny', 416), ('yolo-fastest-1.1', 320)])
def test_the_network_computes_what_opencvs_darknet_reader_computes(real, name, size):
    """Our reading of cfg + .weights (grouped convs, dropout, shortcuts included) against
    OpenCV's own parser, on a stretched photo: every decoded box and score."""
    from bench.peers.darknet_reader import cfg_with_thresh
    w = real['weights']
    cfg = ROOT / 'cfg' / 'yolov3-tiny.cfg' if name == 'yolov3-tiny' else w / f'{name}.cfg'
    net = cv2.dnn.readNetFromDarknet(str(cfg_with_thresh(cfg, 0.0, real['root'])),
                                     str(w / f'{name}.weights'))
    photo = cv2.imread(str(sorted((real['root'] / 'datasets/coco128/images/val2017')
                                  .glob('*.jpg'))[0]))
    blob = cv2.dnn.blobFromImage(photo, 1 / 255, (size, size), swapRB=True, crop=False)
    net.setInput(blob)
    model = load_model(w / f'{name}.weights', cfg).eval()
    # OpenCV's rows run over cells with the anchors inner, ours over anchors with the cells inner
    theirs = np.concatenate([o.reshape(-1, 3, o.shape[-1]).transpose(1, 0, 2).reshape(o.shape)
                             for o in net.forward(net.getUnconnectedOutLayersNames())])
    with torch.no_grad():
        ours = model(torch.from_numpy(blob))[0][0].numpy()
    assert theirs.shape == ours.shape  # OpenCV's class scores are objectness x class
    assert np.abs(theirs[:, :4] * size - ours[:, :4]).max() < 0.1  # pixels (float sums)
    assert np.abs(theirs[:, 4] - ours[:, 4]).max() < 1e-3
    assert np.abs(theirs[:, 5:] - ours[:, 4:5] * ours[:, 5:]).max() < 1e-3


def test_a_stretched_photo_maps_its_boxes_back_to_the_original_pixels(real):
    """darknet's resize changes the aspect: labels go through per-axis gains both ways."""
    ds = YoloDataset(real['root'] / 'val16.txt', 80, img_size=416, stretch=True)
    img, labels, path, (hw, (ratio, pad)), _ = ds[3]
    assert img.shape[1:] == (416, 416) and isinstance(ratio, tuple) and pad == (0, 0)
    h0, w0 = hw
    assert ratio == pytest.approx((416 / w0, 416 / h0))
    xywh = labels[:, 2:] * 416
    xyxy = torch.cat([xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2], 1)
    back = _to_original(xyxy.double(), torch.zeros(len(xyxy), dtype=torch.long),
                        [(hw, (ratio, pad))])
    want = ds.labels[3][:, 1:].astype(np.float64) * [w0, h0, w0, h0]
    want = np.concatenate([want[:, :2] - want[:, 2:] / 2, want[:, :2] + want[:, 2:] / 2], 1)
    assert np.abs(back.numpy() - want).max() < 1e-3


@pytest.mark.parametrize('name,size,bflops', [('yolov3-tiny', 416, 5.571),
                                              ('yolo-fastest-1.1', 320, 0.252)])
def test_each_release_builds_counts_as_darknet_and_writes_back_the_same_bytes(real, tmp_path,
                                                                              name, size,
                                                                              bflops):
    """The release's own cfg parses and builds; its BFLOPs are those darknet prints (and the
    authors publish); the weights the toolkit writes back hold the file's floats byte for byte,
    and its cfg written back builds the same network."""
    from models import Darknet, parse_cfg
    from models.cfg import write_cfg
    from models.weights import read_darknet_file, save_darknet_weights
    w = real['weights']
    model = load_model(w / f'{name}.weights', w / f'{name}.cfg')
    assert round(model.info(size)['bflops'], 3) == bflops
    save_darknet_weights(model, tmp_path / 'back.weights')
    _, ours = read_darknet_file(tmp_path / 'back.weights')
    _, theirs = read_darknet_file(w / f'{name}.weights')  # headers: the images seen differ
    assert ours.tobytes() == theirs.tobytes()
    (tmp_path / 'back.cfg').write_text(write_cfg(parse_cfg(w / f'{name}.cfg')))
    again = Darknet(tmp_path / 'back.cfg')
    assert [type(m).__name__ for m in again.module_list] == \
        [type(m).__name__ for m in model.module_list]
    assert again.info(size) == model.info(size)
