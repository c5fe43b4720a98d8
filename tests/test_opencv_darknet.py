"""OpenCV's DNN darknet reader, an independent implementation, agrees with our files and outputs."""
import cv2
import numpy as np
import pytest
import torch

from models.weights import save_darknet_weights
from tests.conftest import cfg_path

pytestmark = pytest.mark.skipif(not hasattr(cv2.dnn, 'readNetFromDarknet'),
                                reason='needs opencv < 5 (requirements.txt pins it)')


def _ours_in_opencv_layout(model, heads, size):
    """OpenCV rows: cell-major with anchors innermost; xywh / input size; class = obj * cls."""
    rows = []
    for j, p in zip(model.yolo_layers, heads):
        na, h, w, no = p.shape[1:]
        d = model.module_list[j].decode(p, (size, size))[0]
        d = d.view(na, h, w, no).permute(1, 2, 0, 3).reshape(-1, no).clone()
        d[:, :4] /= size
        d[:, 5:] *= d[:, 4:5]
        rows.append(d.numpy())
    return rows


@pytest.mark.parametrize('name', ['yolov3-tiny', 'yolov4-tiny', 'yolov3-mini'])
def test_opencv_reads_our_weights_and_agrees(built, name, tmp_path):
    model, size = built(name), 160
    weights = tmp_path / f'{name}.weights'
    save_darknet_weights(model, weights)
    net = cv2.dnn.readNetFromDarknet(str(cfg_path(name)), str(weights))
    img = np.random.RandomState(0).rand(size, size, 3).astype(np.float32)
    blob = cv2.dnn.blobFromImage(img, 1.0, (size, size), swapRB=False, crop=False)
    net.setInput(blob)
    theirs = net.forward(net.getUnconnectedOutLayersNames())
    with torch.no_grad():
        _, heads = model(torch.from_numpy(blob))
    ours = _ours_in_opencv_layout(model, heads, size)
    assert len(theirs) == len(ours)
    for t, o in zip(theirs, ours):
        assert t.shape == o.shape
        assert np.abs(t[:, :5] - o[:, :5]).max() < 1e-4
        kept = t[:, 5:] != 0  # OpenCV zeroes class scores below its threshold
        assert kept.mean() > 0.5
        assert np.abs(t[:, 5:][kept] - o[:, 5:][kept]).max() < 1e-4
