"""int8 export: the Q/DQ form of a quantized model equals its fake-quant model layer by layer (one
step), its ONNX graph holds int8 weights per channel and the scales TensorRT expects, onnxruntime
runs it like torch does; darknet exports of quantized models and test.py on .onnx files."""
import copy
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import numpy_helper

import export
import test as evaluation
from quantize import graphs
from models.deploy_head import DeployHead
from quantize.loader import load_model
from quantize.config import QuantConfig
from quantize import qdq as qdq_module
from quantize.modules import QuantConvBNAct, QuantShortcut
from quantize.qat import quantize_model
from quantize.qdq import (QDQAfter, QDQConv, QDQError, dequantized_model,
                          exact_int8_weights_here, onnxruntime_target, qdq_model)
from tests.conftest import ROOT, _built
from tests.test_quantize import calibrate, x_batch

CASES = [(QuantConfig(mode=3), 'tensorrt'),
         (QuantConfig(mode=3, float_heads=True), 'tensorrt'),
         (QuantConfig(mode=3, bn_fold=True, fpga=True), 'tensorrt'),
         (QuantConfig(mode=1), 'onnxruntime'), (QuantConfig(mode=1, bn_fold=True), 'onnxruntime'),
         (QuantConfig(mode=3, float_heads=True), 'uint8'), (QuantConfig(mode=1), 'uint8')]


def quantized(name, config):
    return calibrate(quantize_model(copy.deepcopy(_built(name)), config), x_batch())


def layer_io(model, x):
    """Each layer's (input, routed inputs, output) in one forward pass."""
    seen = {}
    hooks = [m.register_forward_hook(lambda m, a, out, i=i: seen.__setitem__(i, (a, out)))
             for i, m in enumerate(model.module_list)]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return seen


def step_bound(layer):
    """How far a Q/DQ layer may be from the fake-quant one: one output step, plus half a
    pre-activation step where an affine pre-activation range is wider than the output's; a
    float output (a head's conv with float_heads) only float rounding."""
    if isinstance(layer, QDQConv) and layer.out_q is None:
        return 1e-4
    scale = layer.out_q[0] if isinstance(layer, QDQConv) else layer.q[0]
    extra = 0.0
    if isinstance(layer, QDQConv) and layer.pre_q is not None and layer.pre_q[0] != scale:
        extra = 0.5 * layer.pre_q[0]
    return scale + extra + 1e-5


@pytest.mark.parametrize('name', ['yolov3-mini', 'yolov4-tiny', 'yolov3-mobilenetv3'])
@pytest.mark.parametrize('config,target', CASES, ids=str)
def test_qdq_layers_equal_fake_quant_within_one_step(name, config, target):
    model = quantized(name, config)
    deploy = qdq_model(model, target)
    io = layer_io(model, x_batch())
    checked = 0
    for i, (args, out) in io.items():
        layer = deploy.module_list[i]
        if not isinstance(layer, (QDQConv, QDQAfter)) or \
                not isinstance(model.module_list[i], (QuantConvBNAct, QuantShortcut)):
            continue
        with torch.no_grad():
            got = layer(*args)
        diff = (got - out).abs()
        assert diff.max() <= step_bound(layer), (i, diff.max().item(), step_bound(layer))
        if getattr(layer, 'pre_q', None) is None:  # the same roundings: apart only at ties
            assert (diff > 1e-5).float().mean() < 0.01, i
        checked += 1
    assert checked == sum(isinstance(m, (QuantConvBNAct, QuantShortcut))
                          for m in model.module_list)


def test_qdq_weights_are_the_fake_quant_weights_with_bn_folded():
    model = quantized('yolov3-mini', QuantConfig(mode=3))
    deploy = qdq_model(model)
    m, d = model.module_list[1], deploy.module_list[1]
    q = d.conv.weight / d.w_scale.view(-1, 1, 1, 1)
    assert torch.allclose(q, q.round(), atol=1e-3) and q.abs().max() < 127.01
    k = m.bn.weight / torch.sqrt(m.bn.running_var + m.bn.eps)
    assert torch.allclose(d.conv.weight, m.quant_weight(m.conv.weight) * k.view(-1, 1, 1, 1),
                          atol=1e-6)


def constants(graph):
    c = {t.name: numpy_helper.to_array(t) for t in graph.graph.initializer}
    for n in graph.graph.node:
        if n.op_type == 'Constant':
            c[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    return c


@pytest.mark.parametrize('target', ['tensorrt', 'onnxruntime'])
def test_qdq_onnx_holds_int8_weights_and_shared_scales(target, tmp_path):
    model = quantized('yolov4-tiny', QuantConfig(mode=3))
    path = graphs.export_onnx(model, tmp_path / 'q', (64, 96), qdq=target)[0]
    g = onnx.load(path)
    c = constants(g)
    producer = {o: n for n in g.graph.node for o in n.output}
    convs = [n for n in g.graph.node if n.op_type == 'Conv']
    assert len(convs) == sum(isinstance(m, QuantConvBNAct) for m in model.module_list)
    for conv in convs:
        dq = producer[conv.input[1]]
        assert dq.op_type == 'DequantizeLinear'
        w, scale = c[dq.input[0]], c[dq.input[1]]
        assert w.dtype == np.int8 and np.abs(w.astype(int)).max() <= 127
        assert next(a.i for a in dq.attribute if a.name == 'axis') == 0
        assert scale.shape == (w.shape[0],)
        assert producer[conv.input[0]].op_type == 'DequantizeLinear'  # int8 input
    activations = [n for n in g.graph.node if n.op_type == 'QuantizeLinear']
    zps = np.array([c[n.input[2]] for n in activations])
    expect = (np.int8, 0) if target == 'tensorrt' else (np.uint8, 128)
    assert zps.dtype == expect[0] and (zps == expect[1]).all()
    for cat in (n for n in g.graph.node if n.op_type == 'Concat' and
                all(producer.get(i) is not None and producer[i].op_type == 'DequantizeLinear'
                    for i in n.input)):
        scales = {float(c[producer[i].input[1]]) for i in cat.input}
        assert len(scales) == 1  # one grid: the concat is a copy of integers


def _ort_vs_torch(config, target, tmp_path, optimize=True):
    """(onnxruntime scores and boxes, torch's) for the Q/DQ graph of a quantized yolov3-mini."""
    model = quantized('yolov3-mini', config)
    deploy = qdq_model(model, target)
    path = graphs.export_onnx(model, tmp_path / 'q', (64, 96), qdq=target)[0]
    options = ort.SessionOptions()
    if not optimize:  # every node on its own: DequantizeLinear, float Conv, QuantizeLinear
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(str(path), options, providers=['CPUExecutionProvider'])
    x = x_batch(1)
    boxes, scores = sess.run(None, {'images': x.numpy()})
    with torch.no_grad():
        want_boxes, want_scores = DeployHead(deploy)(x)
    return scores, boxes, want_scores.numpy(), want_boxes.numpy()


CONFIGS = [QuantConfig(mode=3), QuantConfig(mode=1, bn_fold=True),
           QuantConfig(mode=3, float_heads=True)]


def _every_quantize_output(path):
    """A copy of the graph at ``path`` that also outputs every QuantizeLinear's integers, and
    their names in graph order."""
    g = onnx.load(path)
    c = constants(g)
    names = []
    for n in g.graph.node:
        if n.op_type == 'QuantizeLinear' and n.input[0] not in c:  # activations, not weights
            dtype = onnx.helper.np_dtype_to_tensor_dtype(c[n.input[2]].dtype)
            g.graph.output.append(onnx.helper.make_tensor_value_info(n.output[0], dtype, None))
            names.append(n.output[0])
    return g, names


@pytest.mark.parametrize('target', ['onnxruntime', 'onnxruntime-u8', 'uint8'])
@pytest.mark.parametrize('config', CONFIGS, ids=str)
def test_the_qdq_graph_node_by_node_is_the_torch_model(config, target, tmp_path, monkeypatch):
    """Without onnxruntime's fusions the graph is the deployable model op for op, in float.

    Fed the same integers, every quantize step gives the same integers, except at an exact
    rounding tie (leaky's 0.1 x k/2 steps of a pre-quantized value, which CPUs' float paths
    break either way): torch runs with onnxruntime's integers forced in, so one tie does not
    spread, and each op is checked on its own."""
    model = quantized('yolov3-mini', config)
    deploy = qdq_model(model, target)
    path = graphs.export_onnx(model, tmp_path / 'q', (64, 96), qdq=target)[0]
    graph, names = _every_quantize_output(path)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(graph.SerializeToString(), options,
                                providers=['CPUExecutionProvider'])
    x = x_batch(1)
    boxes, scores, *ints = sess.run(None, {'images': x.numpy()})
    assert len(ints) == len(names) > 10
    forced = iter(ints)
    compared = ties = 0

    def forcing(y, p):
        nonlocal compared, ties
        scale, zp, qmin, qmax = p
        grid = y / scale
        mine = (torch.round(grid) + zp).clamp(qmin, qmax)
        theirs = torch.from_numpy(next(forced).astype(np.float32))
        differ = mine != theirs
        at_tie = (grid - torch.floor(grid) - 0.5).abs() < 1e-3
        assert not (differ & ~at_tie).any(), 'a quantize step differs away from a tie'
        assert ((mine - theirs).abs() <= 1).all()
        compared += mine.numel()
        ties += int(differ.sum())
        return (theirs - zp) * scale

    monkeypatch.setattr(qdq_module, 'fake_q', forcing)
    with torch.no_grad():
        want_boxes, want_scores = DeployHead(deploy)(x)
    assert next(forced, None) is None  # every quantize step of the graph was compared
    assert ties < compared * 0.01
    assert np.abs(scores - want_scores.numpy()).max() < 1e-5
    assert np.abs(boxes - want_boxes.numpy()).max() < 1e-3  # pixels


def _integer_kernels_equal_torch(config, target, tmp_path):
    scores, boxes, want_scores, want_boxes = _ort_vs_torch(config, target, tmp_path)
    # integer kernels and torch's float convs agree except at rounding ties, which a few head
    # cells amplify; the bulk must be equal
    assert np.median(np.abs(scores - want_scores)) < 1e-4
    assert np.abs(scores - want_scores).max() < 0.05
    assert np.median(np.abs(boxes - want_boxes)) < 0.05  # pixels


@pytest.mark.parametrize('config', CONFIGS, ids=str)
def test_onnxruntime_u8_weights_run_the_qdq_graph_like_torch(config, tmp_path):
    """uint8 x uint8 integer kernels are exact on every CPU."""
    _integer_kernels_equal_torch(config, 'onnxruntime-u8', tmp_path)


@pytest.mark.skipif(not exact_int8_weights_here(),
                    reason='x86 without VNNI: onnxruntime saturates uint8 x int8 products here '
                           '(the uint8-weight graph is tested instead, above)')
@pytest.mark.parametrize('config', CONFIGS, ids=str)
def test_onnxruntime_int8_weights_run_the_qdq_graph_like_torch(config, tmp_path):
    _integer_kernels_equal_torch(config, 'onnxruntime', tmp_path)


def test_the_target_for_this_cpu_is_exact_here():
    expect = 'onnxruntime' if exact_int8_weights_here() else 'onnxruntime-u8'
    assert onnxruntime_target() == expect


def test_models_without_a_qdq_form_are_refused(tmp_path):
    with pytest.raises(QDQError, match='not quantized'):
        qdq_model(_built('yolov3-mini'))
    with pytest.raises(QDQError, match='DoReFa'):
        qdq_model(quantized('yolov3-mini', QuantConfig(mode=2)))
    with pytest.raises(QDQError, match='zero points'):
        qdq_model(quantized('yolov3-mini', QuantConfig(mode=1)), 'tensorrt')
    with pytest.raises(QDQError, match='4-bit'):
        qdq_model(quantized('yolov3-mini', QuantConfig(mode=3, w_bits=4)))


@pytest.mark.parametrize('config', [QuantConfig(mode=3), QuantConfig(mode=1, bn_fold=True)],
                         ids=str)
def test_darknet_export_of_a_quantized_model_holds_its_dequantized_weights(config, tmp_path):
    model = quantized('yolov3-mini', config)
    cfg, weights = export.export_darknet(model, tmp_path / 'q')
    back = load_model(weights, cfg).eval()
    x = x_batch(1)
    with torch.no_grad():
        got, want = back(x)[0], dequantized_model(model)(x)[0]
        float_out = _built('yolov3-mini')(x)[0]
    assert (got - want).abs().max() < 1e-3
    assert (want - float_out).abs().max() > 1e-3  # the weights really are the quantized ones


def test_export_int8_calibrates_a_float_checkpoint(tiny_data, tmp_path):
    weights = str(ROOT / 'weights' / 'yolov3-mini.pt')
    with pytest.raises(export.ExportError, match='--calib-images'):
        export.run(weights=weights, int8=True, project=str(tmp_path), name='none')
    images = str(tiny_data.parent / 'shapes' / 'train.txt')
    path = export.run(weights=weights, int8=True, calib_images=images, calib=8, img_size=(128,),
                      project=str(tmp_path), name='int8')[0]
    ops = {n.op_type for n in onnx.load(path).graph.node}
    assert {'QuantizeLinear', 'DequantizeLinear'} <= ops


def scored_like_the_checkpoint(fmt, tiny_data, tmp_path):
    """Export the shipped checkpoint in ``fmt`` at 128 px, check test.py scores the export as
    the checkpoint (within 1e-3); returns the export's path and test.py's keywords."""
    weights = str(ROOT / 'weights' / 'yolov3-mini.pt')
    path = export.run(weights=weights, fmt=fmt, img_size=(128,), project=str(tmp_path),
                      name=fmt)[0]
    kw = {'data': str(tiny_data), 'img_size': 128, 'batch_size': 4, 'workers': 0,
          'project': str(tmp_path), 'plots': False, 'verbose': False}
    from_export = evaluation.run(weights=path, name=f'{fmt}_eval', **kw)
    from_torch = evaluation.run(weights=weights, name='torch', **kw)
    assert from_torch['map50'] > 0
    assert abs(from_export['map50'] - from_torch['map50']) < 1e-3
    assert abs(from_export['map50_95'] - from_torch['map50_95']) < 1e-3
    return path, kw


def test_test_py_scores_an_onnx_export_like_the_checkpoint(tiny_data, tmp_path):
    path, kw = scored_like_the_checkpoint('onnx', tiny_data, tmp_path)
    with pytest.raises(ValueError, match='--img-size 128'):
        evaluation.run(weights=path, name='size', **{**kw, 'img_size': 160})


def test_quant_table_bench_runs_qat_ptq_and_their_onnx(tiny_data, tmp_path):
    from bench.experiments import quant_table
    quant_table.main(['--data', str(tiny_data), '--img-size', '128', '--epochs', '1',
                      '--variants', 'q3', '--ptq', 'max', '--calib', '8',
                      '--project', str(tmp_path)])
    result = json.loads((tmp_path / 'exp' / 'quant_table.json').read_text())
    assert [r['key'] for r in result['rows']] == ['q3', 'ptq-max']
    for r in result['rows']:
        assert 0 <= r['map50'] <= 1 and 0 <= r['onnx']['map50'] <= 1
