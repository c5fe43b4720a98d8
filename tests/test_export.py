"""export.py: ONNX equals torch (static and dynamic shapes, every cfg), its NMS node equals ours,
darknet exports of pruned models load back in our reader and OpenCV's, clear errors."""
import subprocess
import sys

import cv2
import numpy as np
import onnxruntime as ort
import pytest
import torch

import export
from quantize import graphs
from models.deploy_head import DeployHead
from data.drawn import draw_shape
from models.weights import save_checkpoint
from quantize.loader import load_model
from prune.masks import channel_plan, layer_plan
from prune.surgery import prune_model
from tests.conftest import CFGS, ROOT, _built
from tests.test_model import per_head_decode, two_heads
from tests.test_opencv_darknet import _ours_in_opencv_layout
from tests.test_prune import zero_some_gammas
from utils.nms import non_max_suppression


def session(path):
    return ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])


def torch_outputs(model, x):
    """Corner boxes and scores from each [yolo] layer's own decoding (checked by hand in
    tests/test_model.py), not from the all-heads-at-once decoding DeployHead shares with
    Darknet.forward; and the segmentation head's logits."""
    out = []
    with torch.no_grad():
        if model.yolo_layers:
            decoded = per_head_decode(model.eval(), x)
            xy, half = decoded[..., :2], decoded[..., 2:4] / 2
            out = [torch.cat((xy - half, xy + half), -1).numpy(),
                   (decoded[..., 5:] * decoded[..., 4:5]).numpy()]
        if model.seg_layers:
            out.append(model.seg_logits(model.heads(x)).numpy())
    return out


@pytest.mark.parametrize('new_coords', [(0, 0), (1, 1), (0, 1)])
def test_deploy_head_decodes_as_the_model_does(new_coords, tmp_path):
    model = two_heads(new_coords)
    x = torch.rand(2, 3, 32, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        got = [t.numpy() for t in DeployHead(model)(x)]
    want = torch_outputs(model, x)
    path = graphs.export_onnx(model, tmp_path / 'two', (32, 64), batch=2)[0]
    onnx_got = session(path).run(None, {'images': x.numpy()})
    for a, b, c in zip(got, onnx_got, want):
        assert a.shape == c.shape == (2, 2 * (8 * 16 + 4 * 8), a.shape[-1])
        assert np.abs(a - c).max() < 1e-4 and np.abs(b - c).max() < 1e-4


@pytest.mark.parametrize('name', CFGS)
def test_onnx_equals_torch_static_and_dynamic(name, tmp_path):
    model = _built(name)
    dynamic = graphs.export_onnx(model, tmp_path / 'dynamic', (64, 96), dynamic=True)[0]
    g = torch.Generator().manual_seed(0)
    cases = [(dynamic, torch.rand(1, 3, 64, 96, generator=g)),
             (dynamic, torch.rand(2, 3, 96, 64, generator=g))]
    # a static graph differs only in its fixed axes: the full-size networks (10-15 s an
    # export) are checked dynamic only, every layer type still goes through both
    if sum(p.numel() for p in model.parameters()) < 2e7:
        static = graphs.export_onnx(model, tmp_path / 'static', (64, 96))[0]
        cases.append((static, torch.rand(1, 3, 64, 96, generator=g)))
    for path, x in cases:
        got = session(path).run(None, {'images': x.numpy()})
        for a, b in zip(got, torch_outputs(model, x)):
            assert a.shape == b.shape
            assert np.abs(a - b).max() < 1e-4


def test_onnx_nms_node_selects_what_our_nms_keeps(tmp_path):
    model = load_model(ROOT / 'weights' / 'yolov3-mini.pt').float().eval()
    path = export.run(weights=str(ROOT / 'weights' / 'yolov3-mini.pt'), nms=True,
                      project=str(tmp_path), name='nms')[0]
    img = np.full((320, 320, 3), 114, np.uint8)  # three shapes the shipped model knows
    for cls, center, color in [(0, (80, 90), (30, 60, 220)), (1, (220, 100), (200, 80, 20)),
                               (3, (150, 230), (20, 180, 40))]:
        mask = np.zeros((320, 320), np.uint8)
        draw_shape(mask, cls, center, 40, 1.0, 0.0, 10)
        img[mask > 0] = color
    x = torch.from_numpy(img[..., ::-1].copy()).permute(2, 0, 1)[None]
    x = x.float() / 255
    boxes, scores, selected = session(path).run(None, {'images': x.numpy()})
    theirs = {(int(c), round(float(scores[0, i, c]), 4)) for _, c, i in selected}
    with torch.no_grad():
        ours = non_max_suppression(model(x)[0], 0.25, 0.45)[0]
    mine = {(int(c), round(float(s), 4)) for s, c in zip(ours[:, 4], ours[:, 5])}
    assert len(mine) > 0 and theirs == mine


def pruned_models():
    base = zero_some_gammas(_built('yolov3-mini'))
    channel = prune_model(base, channel_plan(base, 1, 0.4, clamp=True))
    plan = channel_plan(base, 1, 0.4, clamp=True)
    plan.dropped = layer_plan(base, 2).dropped
    return {'pruned': channel, 'layer-pruned': prune_model(base, plan)}


@pytest.mark.parametrize('kind', ['pruned', 'layer-pruned'])
def test_darknet_export_of_pruned_models_loads_back_everywhere(kind, tmp_path):
    model = pruned_models()[kind]
    ckpt = tmp_path / 'm.pt'
    save_checkpoint({'cfg': model.cfg_text, 'model': model.state_dict()}, ckpt)
    cfg, weights = export.run(weights=str(ckpt), fmt='darknet', project=str(tmp_path),
                              name='dn')
    back = load_model(weights, cfg).eval()
    x = torch.rand(1, 3, 160, 160)
    with torch.no_grad():
        assert torch.equal(model(x)[0], back(x)[0])
        heads = back(x)[1]
    net = cv2.dnn.readNetFromDarknet(cfg, weights)
    net.setInput(x.numpy())
    theirs = net.forward(net.getUnconnectedOutLayersNames())
    for t, o in zip(theirs, _ours_in_opencv_layout(back, heads, 160)):
        assert np.abs(t[:, :5] - o[:, :5]).max() < 1e-4


def test_engine_without_tensorrt_is_one_line(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / 'export.py'), '--format', 'engine',
                        '--project', str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 1
    assert 'TensorRT' in r.stderr and 'Traceback' not in r.stderr
    assert r.stderr.strip().count('\n') == 0
