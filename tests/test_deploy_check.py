"""No silent loss: an int8 graph is checked in its runtime against the fake-quant model before
export.py writes it; a graph that computes something else is refused (or replaced by a flavour
that passes), naming the first layer where its values part."""
import copy
import json

import pytest
import torch

import export
from models.onnx_model import OnnxModel
from models.weights import save_checkpoint
from quantize import deploy_check, graphs
from quantize.config import QuantConfig
from quantize.deploy_check import check_graph, parting_layer
from quantize.qat import set_quant_enabled
from quantize.modules import QuantConvBNAct
from quantize.qdq import exact_int8_weights_here
from tests.conftest import ROOT

CONFIG = QuantConfig(mode=3, float_heads=True)


@pytest.fixture(scope='module')
def trained(tiny_data):
    """The shipped yolov3-mini quantized (float heads) and calibrated on the tiny set's photos,
    and a batch of them: a trained network, whose scores respond to what its layers compute."""
    from models.weights import load_model
    from quantize.ptq import calibrated, calibration_batches
    images = str(tiny_data.parent / 'shapes' / 'train.txt')
    batches = calibration_batches(images, 6, 16, 128, 16, 'cpu', 0)
    model = calibrated(load_model(ROOT / 'weights' / 'yolov3-mini.pt'), batches, 'percentile')
    return model, batches


def moved(model, layer, factor=2.0):
    """A copy of a fake-quant model whose conv ``layer`` has weights ``factor`` times as large:
    its graph is what a runtime that computes that layer wrongly runs."""
    model = copy.deepcopy(model)
    m = model.module_list[layer]
    assert isinstance(m, QuantConvBNAct)
    with torch.no_grad():
        m.conv.weight *= factor
    return model


def graph(model, tmp_path, target):
    return graphs.export_onnx(model, tmp_path / target, (128, 128), qdq=target)[0]


def unquantized(model):
    model = copy.deepcopy(model)
    set_quant_enabled(model, False)
    return model


def quantized_outputs(model):
    return [i for i, m in enumerate(model.module_list)
            if isinstance(m, QuantConvBNAct) and m.out_quant is not None]


@pytest.mark.parametrize('target', ['tensorrt', 'uint8'])
def test_a_faithful_graph_passes(trained, tmp_path, target):
    """The flavours that round only where the fake-quant model does."""
    model, batches = trained
    path = graph(model, tmp_path, target)
    verdict = check_graph(path, 'onnxruntime', model, unquantized(model), batches,
                          lambda: OnnxModel(path))
    assert verdict.ok and verdict.live > 50 and verdict.q99 < 0.05 and verdict.layer is None
    assert verdict.noise > verdict.q99  # quantization moves the scores more than the runtime


def test_a_graph_that_parts_fails_and_names_the_first_layer(trained, tmp_path):
    model, batches = trained
    layer = quantized_outputs(model)[3]
    path = graph(moved(model, layer), tmp_path, 'tensorrt')
    verdict = check_graph(path, 'onnxruntime', model, unquantized(model), batches,
                          lambda: OnnxModel(path))
    assert not verdict.ok and verdict.q99 > verdict.allowed >= 0.05
    assert verdict.layer == layer
    faithful = graph(model, tmp_path, 'uint8')
    assert parting_layer(faithful, 'onnxruntime', model, batches[0][:1]) is None


@pytest.fixture
def ptq_checkpoint(trained, tmp_path):
    model, _ = trained
    path = tmp_path / 'q.pt'
    save_checkpoint({'cfg': model.cfg_text, 'model': model.state_dict(),
                     'quant': model.quant_config}, path)
    return path


def test_export_refuses_a_graph_its_runtime_computes_otherwise(trained, ptq_checkpoint,
                                                               tmp_path, monkeypatch, tiny_data):
    layer = quantized_outputs(trained[0])[3]
    written = graphs.export_onnx  # every graph the check writes computes that layer wrongly
    monkeypatch.setattr(deploy_check, 'export_onnx', lambda model, *a, **kw:
                        written(moved(model, layer), *a, **kw))
    images = str(tiny_data.parent / 'shapes' / 'train.txt')
    with pytest.raises(export.ExportError, match=rf'--qdq tensorrt in onnxruntime on this CPU '
                                                 rf'is not the fake-quant model .*layer {layer} '
                                                 rf'\(convolutional\)\); nothing written'):
        export.run(weights=str(ptq_checkpoint), qdq='tensorrt', img_size=(128, 128),
                   check_images=images, project=str(tmp_path), name='out')
    assert not list((tmp_path / 'out').glob('*.onnx'))


def test_export_checks_and_records_what_it_wrote(ptq_checkpoint, tmp_path):
    files = export.run(weights=str(ptq_checkpoint), img_size=(128, 128), project=str(tmp_path),
                       name='out')
    record = json.loads((tmp_path / 'out' / 'export.json').read_text())
    assert record['qdq'] == 'tensorrt' and record['int8_check']['ok']
    assert record['files'] == files


@pytest.mark.skipif(exact_int8_weights_here(),
                    reason='this CPU has VNNI (or is not x86): onnxruntime multiplies uint8 by '
                           'int8 exactly here; the saturating kernels exist on x86 without VNNI')
def test_the_saturating_onnxruntime_flavour_is_caught_on_this_cpu(trained):
    """On AVX2 without VNNI the uint8 x int8 kernels saturate: yolov3-tiny lost 22 points of
    mAP@0.5 in such a graph (docs/results/real.md)."""
    model, batches = trained
    with pytest.raises(export.ExportError, match='--qdq onnxruntime in onnxruntime'):
        deploy_check.checked_qdq(model, 'onnx', (128, 128), 'onnxruntime', batches)
    assert deploy_check.checked_qdq(model, 'onnx', (128, 128), None, batches)[0] in (
        'tensorrt', 'onnxruntime-u8')


def test_synthetic_images_stand_in_when_none_are_recorded(ptq_checkpoint, tmp_path, caplog):
    batches = deploy_check.check_batches(ptq_checkpoint, '', (64, 96), 6)
    assert batches[0].shape == (deploy_check.CHECK_IMAGES, 3, 64, 96)
    assert 0 <= float(batches[0].min()) and float(batches[0].max()) <= 1
    assert torch.equal(batches[0], deploy_check.check_batches(ptq_checkpoint, '', (64, 96), 6)[0])
