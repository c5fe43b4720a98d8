"""export.py --format ncnn: the float graph converted by pnnx runs in ncnn with the ONNX graph's
boxes and scores (fp32 weights: to float rounding; --half: fp16 storage, within its rounding),
test.py scores the .param like the checkpoint, and what ncnn cannot take here is refused in one
line."""
import numpy as np
import pytest
import torch

pytest.importorskip('ncnn', reason='ncnn is not installed (pip install ncnn pnnx)')
pytest.importorskip('pnnx', reason='pnnx is not installed (pip install ncnn pnnx)')

import export  # noqa: E402
from models.ncnn_model import NcnnModel  # noqa: E402
from models.onnx_model import OnnxModel  # noqa: E402
from quantize.graphs import ExportError  # noqa: E402
from tests.conftest import ROOT, needs_real  # noqa: E402

MINI = str(ROOT / 'weights' / 'yolov3-mini.pt')


def exported(tmp_path, fmt, weights=MINI, size=128, **kw):
    files = export.run(weights=weights, fmt=fmt, img_size=[size], project=str(tmp_path),
                       name=fmt + ''.join(kw), exist_ok=True, **kw)
    return next(f for f in files if f.endswith(('.param', '.onnx')))


def images(size, n=2):
    torch.manual_seed(0)
    return torch.rand(n, 3, size, size)


@pytest.mark.parametrize('weights', [MINI, str(ROOT / 'weights' / 'yolov3-mini-multitask.pt')])
def test_ncnn_computes_the_onnx_graph(weights, tmp_path):
    onnx_model = OnnxModel(exported(tmp_path, 'onnx', weights))
    ncnn_model = NcnnModel(exported(tmp_path, 'ncnn', weights))
    assert (ncnn_model.nc, ncnn_model.seg_nc) == (onnx_model.nc, onnx_model.seg_nc)
    x = images(128)
    want, got = onnx_model.raw(x.numpy()[:1]), ncnn_model.raw(x.numpy()[:1])
    assert ncnn_model.names == onnx_model.names
    for name, a, b in zip(ncnn_model.names, want, got):
        assert a.shape == b.shape, name
        scale = max(1.0, float(np.abs(a).max()))
        assert np.abs(a - b).max() <= 1e-5 * scale, (name, np.abs(a - b).max())


def test_half_storage_stays_close_and_the_size_is_checked(tmp_path):
    full = NcnnModel(exported(tmp_path, 'ncnn'))
    half = NcnnModel(exported(tmp_path, 'ncnn', half=True))
    x = images(128).numpy()[:1]
    (boxes, scores), (hboxes, hscores) = full.raw(x), half.raw(x)
    assert 0 < np.abs(scores - hscores).max() < 0.02  # fp16 weights: close, not equal
    assert np.abs(boxes - hboxes).max() < 0.02 * np.abs(boxes).max()
    with pytest.raises(Exception, match='takes 128x128 images'):
        full(torch.zeros(1, 3, 160, 160))


def test_test_py_scores_the_ncnn_model_as_the_checkpoint(tiny_data, tmp_path):
    import test as evaluation
    param = exported(tmp_path, 'ncnn')
    common = {'data': str(tiny_data), 'img_size': 128, 'project': str(tmp_path),
              'plots': False, 'verbose': False}
    graph = evaluation.run(weights=param, name='ncnn', **common)
    onnx_graph = evaluation.run(weights=exported(tmp_path, 'onnx'), name='onnx', **common)
    assert graph['map50'] > 0.1
    assert graph['map50'] == pytest.approx(onnx_graph['map50'], abs=2e-3)
    assert graph['map50_95'] == pytest.approx(onnx_graph['map50_95'], abs=2e-3)


def test_what_ncnn_cannot_take_here_is_refused(tmp_path):
    with pytest.raises(ExportError, match='--int8'):
        export.run(weights=MINI, fmt='ncnn', int8=True, calib_images='x', project=str(tmp_path))
    from models.weights import load_model, save_checkpoint
    from quantize.config import QuantConfig
    from quantize.qat import quantize_model
    model = quantize_model(load_model(MINI), QuantConfig(mode=3))
    save_checkpoint({'cfg': model.cfg_text, 'model': model.state_dict(),
                     'quant': model.quant_config}, tmp_path / 'q.pt')
    with pytest.raises(ExportError, match='writes float graphs'):
        export.run(weights=str(tmp_path / 'q.pt'), fmt='ncnn', project=str(tmp_path))
    from models.weights import WeightsError
    bad = tmp_path / 'm.ncnn.param'
    bad.write_text('7767517\n1 1\nInput in0 0 1 in0\n')
    with pytest.raises(WeightsError, match='no Input layer named images'):
        NcnnModel(bad)


BIG = {'yolov3.cfg', 'yolov4.cfg', 'yolov3-spp.cfg'}  # 16-20 s each; checked by hand, edge.md


@pytest.mark.slow
@pytest.mark.parametrize('cfg', sorted(p.name for p in (ROOT / 'cfg').glob('*.cfg')
                                       if p.name not in BIG))
def test_every_shipped_cfg_computes_the_same_in_ncnn(cfg, tmp_path):
    """Depthwise convs, SE blocks, maxpools of stride 1, grouped routes, upsamples,
    segmentation heads: ncnn computes the ONNX graph (random BN statistics, 128 px) within
    1e-6 of the largest output."""
    from models import Darknet
    from tests.conftest import randomize_bn
    torch.manual_seed(0)
    same_in_ncnn(randomize_bn(Darknet(str(ROOT / 'cfg' / cfg))).eval(), 128,
                 np.random.default_rng(0).random((1, 3, 128, 128), dtype=np.float32), tmp_path)


@needs_real
@pytest.mark.slow
@pytest.mark.parametrize('name,size', [('yolov3-tiny', 416), ('yolo-fastest-1.1', 320)])
def test_the_real_models_compute_the_same_in_ncnn(real, name, size, tmp_path):
    """The COCO releases (Yolo-Fastest: depthwise convs and dropouts) on a val2017 photo, fed as
    a non-contiguous array (the transposed image), within 1e-5 of the largest output."""
    import cv2
    from models.weights import load_model
    w = real['weights']
    cfg = ROOT / 'cfg' / 'yolov3-tiny.cfg' if name == 'yolov3-tiny' else w / f'{name}.cfg'
    model = load_model(str(w / f'{name}.weights'), str(cfg)).eval()
    photo = cv2.imread(str(sorted((real['root'] / 'datasets/coco128/images/val2017')
                                  .glob('*.jpg'))[0]))
    x = cv2.resize(photo, (size, size))[:, :, ::-1].transpose(2, 0, 1)[None] / 255.0
    same_in_ncnn(model, size, x.astype(np.float32), tmp_path, tolerance=1e-5)


def same_in_ncnn(model, size, x, tmp_path, tolerance=1e-6):
    """ncnn's outputs against onnxruntime's, within tolerance of the largest output (or 1)."""
    from export.ncnn import export_ncnn
    from quantize.graphs import export_onnx
    onnx_model = OnnxModel(export_onnx(model, tmp_path / 'a', (size, size))[0])
    ncnn_model = NcnnModel(export_ncnn(model, tmp_path / 'b', (size, size))[0])
    assert ncnn_model.names == onnx_model.names
    for name, a, b in zip(onnx_model.names, onnx_model.raw(x), ncnn_model.raw(x)):
        assert np.abs(a - b).max() <= tolerance * max(1.0, float(np.abs(a).max())), name
