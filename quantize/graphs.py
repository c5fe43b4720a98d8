"""ONNX graphs and OpenVINO IRs of a network (float, or int8 Q/DQ for a quantized one), and
runners that time them: what export.py writes and what compress.py and the benches run.

ONNX graphs take ``images`` (b, 3, h, w) float in [0, 1] and give ``boxes`` (b, n, 4) as x1 y1
x2 y2 in input pixels and ``scores`` (b, n, classes) = objectness x class probability; with nms
also ``selected`` (k, 3) = (image, class, box index) from an ONNX NonMaxSuppression node.
"""
from __future__ import annotations

import copy
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from models.darknet import is_quantized
from models.deploy_head import DeployHead, output_names
from models.openvino_model import OpenVinoModel
from quantize.qdq import (QDQError, exact_int8_weights_here, int8_initializers,
                          onnxruntime_target, qdq_model)
from utils.errors import ToolkitError
from utils.files import atomic_path
from utils.log import LOGGER

MIN_OPSET = 11  # Resize and dynamic Slice as exported; Q/DQ per channel needs 13
MIN_OPSET_INT8 = 13


class ExportError(ToolkitError, RuntimeError):
    """An export that cannot be done here; the message says why and what to do."""


def export_onnx(model, stem, img_hw, batch=1, dynamic=False, opset=17, nms=False,
                simplify=False, iou_thres=0.45, conf_thres=0.25, max_det=300, qdq='tensorrt'):
    """Write an ONNX graph; a quantized model becomes an int8 Q/DQ graph (quantize/qdq.py)."""
    import onnx  # optional dependency, needed only here

    path = f'{stem}.onnx'
    int8 = is_quantized(model)
    if int8:
        if opset < 13:
            raise ExportError(f'int8 Q/DQ graphs need --opset 13 or later (per-channel '
                              f'weights), got {opset}')
        try:
            model = qdq_model(model, qdq)
        except QDQError as e:
            raise ExportError(str(e)) from None
        if qdq == 'onnxruntime' and not exact_int8_weights_here():
            LOGGER.warning('WARNING: on this CPU (x86 without VNNI) onnxruntime saturates uint8 x '
                           'int8 products: this graph runs inexactly here (deploy it on a CPU '
                           'with VNNI or ARM), --qdq onnxruntime-u8 is exact on any CPU')
    x = torch.zeros(batch, model.in_channels, *img_hw, device=next(model.parameters()).device)
    names = output_names(model)
    axes = {'images': {0: 'batch', 2: 'height', 3: 'width'}, 'boxes': {0: 'batch', 1: 'anchors'},
            'scores': {0: 'batch', 1: 'anchors'}, 'seg': {0: 'batch', 2: 'h', 3: 'w'}}
    axes = {k: v for k, v in axes.items() if k == 'images' or k in names} if dynamic else None
    with atomic_path(path) as tmp:  # the graph is edited after tracing: only the end result
        with warnings.catch_warnings():  # the tracer's notes on shape arithmetic; tested
            warnings.simplefilter('ignore', category=torch.jit.TracerWarning)
            warnings.simplefilter('ignore', category=DeprecationWarning)
            torch.onnx.export(DeployHead(model).eval(), x, str(tmp), opset_version=opset,
                              dynamo=False, input_names=['images'], output_names=names,
                              dynamic_axes=axes)
        graph = onnx.load(str(tmp))
        if int8:
            graph = int8_initializers(graph)
        if nms and 'boxes' in names:
            graph = add_nms(graph, iou_thres, conf_thres, max_det)
        if simplify:
            graph = _simplify(graph)
        graph.producer_name = 'yolo-compression-toolkit'
        onnx.checker.check_model(graph)
        onnx.save(graph, str(tmp))
    return [path]


def export_openvino(model, stem, img_hw, batch=1, **onnx_kw):
    """An OpenVINO IR (<stem>.xml and .bin) converted from the ONNX export: fp32 weights and
    arithmetic, or, from a quantized model's Q/DQ graph, int8 layers (OpenVINO turns the pairs
    into int8 kernels; symmetric int8 activations run fastest there, and --qdq openvino keeps
    the weights within +-63 so that x86 CPUs without VNNI compute them exactly,
    docs/results/latency.md)."""
    try:
        import openvino as ov  # optional dependency, needed only here
    except ImportError:
        raise ExportError('--format openvino needs openvino: pip install openvino') from None
    scratch = f'.{Path(stem).name}.tmp{os.getpid()}.'  # swept like a temporary file if killed
    with tempfile.TemporaryDirectory(prefix=scratch, dir=Path(stem).parent) as tmp:
        graph = export_onnx(model, Path(tmp) / 'graph', img_hw, batch, **onnx_kw)[0]
        ov.save_model(ov.Core().read_model(graph), str(Path(tmp) / 'graph.xml'),
                      compress_to_fp16=False)
        for suffix in ('.bin', '.xml'):  # the .xml last: readers open it, then its .bin
            with atomic_path(f'{stem}{suffix}') as final:
                os.replace(Path(tmp) / f'graph{suffix}', final)
    return [f'{stem}.xml', f'{stem}.bin']


def add_nms(graph, iou_thres, conf_thres, max_det):
    """Append NonMaxSuppression (per class, corner boxes) reading ``boxes`` and ``scores``."""
    from onnx import TensorProto, helper

    g = graph.graph
    g.node.extend([
        helper.make_node('Transpose', ['scores'], ['scores_by_class'], perm=[0, 2, 1]),
        helper.make_node('Constant', [], ['nms_max'], value=helper.make_tensor(
            'nms_max', TensorProto.INT64, [1], [max_det])),
        helper.make_node('Constant', [], ['nms_iou'], value=helper.make_tensor(
            'nms_iou', TensorProto.FLOAT, [1], [iou_thres])),
        helper.make_node('Constant', [], ['nms_conf'], value=helper.make_tensor(
            'nms_conf', TensorProto.FLOAT, [1], [conf_thres])),
        helper.make_node('NonMaxSuppression', ['boxes', 'scores_by_class', 'nms_max', 'nms_iou',
                                               'nms_conf'], ['selected'], center_point_box=0),
    ])
    g.output.append(helper.make_tensor_value_info('selected', TensorProto.INT64, ['k', 3]))
    return graph


def _simplify(graph):
    try:
        import onnxslim
    except ImportError:
        raise ExportError('--simplify needs onnxslim: pip install onnxslim') from None
    return onnxslim.slim(graph)


def onnx_runners(model, size, batches, device, tmp, backend='onnxruntime fp32', threads=0,
                 qdq=None):
    """The ONNX export of a model (an int8 Q/DQ graph for onnxruntime when the model is
    quantized), one static graph per batch size: what deployments run, and onnxruntime plans
    static shapes better (docs/results/latency.md). A fresh session per block,
    so that no idle session's threads compete with the one being timed."""
    import onnxruntime as ort

    providers = ['CPUExecutionProvider']
    if device.type == 'cuda':  # a CPU-only onnxruntime runs there on the CPU: say so in the row
        if 'CUDAExecutionProvider' in ort.get_available_providers():
            providers.insert(0, 'CUDAExecutionProvider')
        else:
            backend += ' (CPU)'
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads  # 0: onnxruntime's default, one per core

    def write(cpu_model, stem, b):
        return export_onnx(cpu_model, stem, (size, size), batch=b,
                           qdq=qdq or onnxruntime_target())[0]

    def open_graph(path):
        sess = ort.InferenceSession(path, options, providers=providers)
        return lambda x: sess.run(None, {'images': x})
    yield from graph_runners(model, size, batches, tmp, backend, write, open_graph)


def openvino_runners(model, size, batches, tmp, backend='openvino fp32', threads=0, qdq=None):
    """The OpenVINO IR of a model (int8 layers from its --qdq openvino graph when it is
    quantized), one static graph per batch size, on the CPU; a freshly compiled model per
    block, as onnx_runners."""
    def write(cpu_model, stem, b):
        return export_openvino(cpu_model, stem, (size, size), batch=b, qdq=qdq or 'openvino')[0]
    yield from graph_runners(model, size, batches, tmp, backend, write,
                              lambda path: OpenVinoModel(path, threads).raw)


def graph_runners(model, size, batches, tmp, backend, write, open_graph):
    """(row, make) per batch size: ``write(model, stem, batch)`` exports a static graph of a CPU
    copy of the model (.cpu() would move the torch rows' model), ``open_graph(path)`` gives the
    function that runs it on an input; each ``make()`` opens the graph afresh."""
    folder = Path(tempfile.mkdtemp(dir=tmp))  # every graph lives until the timing ends
    cpu_model = copy.deepcopy(model).float().cpu()
    for b in batches:
        path = write(cpu_model, folder / f'graph_b{b}', b)
        x = np.random.rand(b, 3, size, size).astype(np.float32)

        def make(path=path, x=x):
            run = open_graph(path)
            return lambda: run(x)
        yield {'backend': backend, 'batch': b}, make
