"""Per-layer precision written in the cfg (lightNet's precision=): only int8/int4 convs are
quantized, the graph rounds only around them, and tools that need integers say which layer is
not."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import export
from quantize import graphs
from models.deploy_head import DeployHead
from models import Darknet
from models.layers import ConvBNAct
from quantize.calibrate import calibrate
from quantize.config import QuantConfig
from quantize.export_int import IntExportError, integer_model
from quantize.modules import QuantConvBNAct
from quantize.qat import quantize_model
from quantize.qdq import qdq_model
from tests.conftest import cfg_path, randomize_bn

FLOAT = {0: 'fp32', 10: 'fp16', 24: 'fp32'}  # layer 25 reads 24: it must quantize its input


def mixed_cfg(precisions):
    model = Darknet(cfg_path('yolov3-mini'))
    for i, m in enumerate(model.module_list):
        if isinstance(m, ConvBNAct):
            model.blocks[i + 1].options['precision'] = precisions.get(i, 'int8')
    return model.cfg_text


def calibrated(cfg_text, size=64):
    model = quantize_model(randomize_bn(Darknet(cfg_text)), QuantConfig(mode=3))
    with torch.no_grad():
        calibrate(model, [torch.rand(2, 3, size, size)])
    return model.eval()


def test_only_integer_layers_are_quantized_and_int4_gets_4_bit_weights():
    model = quantize_model(Darknet(mixed_cfg(FLOAT | {2: 'int4'})), QuantConfig(mode=3))
    ml = model.module_list
    assert all(isinstance(ml[i], ConvBNAct) for i in FLOAT)
    assert ml[2].w_bits == 4 and ml[2].a_bits == 8 and ml[3].w_bits == 8
    assert ml[1].in_quant is not None   # follows the float layer 0
    assert ml[25].in_quant is not None  # follows the float layer 24
    assert ml[3].in_quant is None       # follows the int4 layer 2: already on a grid


def test_a_cfg_without_precision_keys_quantizes_every_conv_as_before():
    model = quantize_model(Darknet(cfg_path('yolov3-mini')), QuantConfig(mode=3))
    quantized = [m for m in model.module_list if isinstance(m, QuantConvBNAct)]
    assert not any(isinstance(m, ConvBNAct) for m in model.module_list)
    assert [m.in_quant is not None for m in quantized].count(True) == 1


def test_the_qdq_graph_rounds_only_around_int8_layers_and_equals_torch(tmp_path):
    # seeded: about one random model in twelve has a rounding tie early enough to move the
    # median score past 1e-4 (its 99th percentile stays near 4e-4, as in the others)
    torch.manual_seed(0)
    model = calibrated(mixed_cfg(FLOAT))
    path = graphs.export_onnx(model, tmp_path / 'mixed', (64, 64), qdq='onnxruntime-u8')[0]
    graph = onnx.load(path).graph
    init = {t.name for t in graph.initializer}
    dq_out = {n.output[0] for n in graph.node if n.op_type == 'DequantizeLinear'}
    convs = [n for n in graph.node if n.op_type == 'Conv']
    float_weights = [n.name for n in convs if n.input[1] in init]
    assert len(float_weights) == len(FLOAT)
    assert sum(n.input[1] in dq_out for n in convs) == len(convs) - len(FLOAT)
    x = torch.rand(1, 3, 64, 64)
    got = ort.InferenceSession(path, providers=['CPUExecutionProvider']).run(
        None, {'images': x.numpy()})
    with torch.no_grad():
        want = DeployHead(qdq_model(model, 'onnxruntime-u8'))(x)
    # as for all-int8 graphs (test_qdq.py): equal but at rounding ties
    assert np.median(np.abs(got[1] - want[1].numpy())) < 1e-4
    assert np.quantile(np.abs(got[1] - want[1].numpy()), 0.99) < 1e-3
    assert np.abs(got[1] - want[1].numpy()).max() < 0.05
    assert np.median(np.abs(got[0] - want[0].numpy())) < 0.05  # pixels


def test_the_integer_export_names_a_float_layer():
    model = calibrated(mixed_cfg({10: 'fp16'}))
    with pytest.raises(IntExportError, match=r'layer 10 is a float conv \(precision=fp16'):
        integer_model(model)


def test_tensorrt_pins_the_float_layers_of_the_exported_graph(tmp_path):
    """The names TensorRT's parser gives layers are the ONNX node names: every node of a float
    conv gets its precision pinned, no node of an int8 conv does."""
    model = calibrated(mixed_cfg(FLOAT))
    path = graphs.export_onnx(model, tmp_path / 'mixed', (64, 64), qdq='tensorrt')[0]
    names = [n.name for n in onnx.load(path).graph.node]
    pins = export.precision_pins(model, names)
    for i, precision in FLOAT.items():
        mine = [n for n in names if n.startswith(f'/module_list.{i}/')]
        assert mine and all(pins[n] == precision for n in mine)
    assert not any(n.startswith('/module_list.3/') for n in pins)
    assert set(pins.values()) == {'fp16', 'fp32'}
    assert export.precision_pins(Darknet(cfg_path('yolov3-mini')), names) == {}
