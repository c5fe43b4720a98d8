"""Export a checkpoint for deployment: darknet cfg + weights, ONNX, an OpenVINO IR, or a TensorRT
engine.

    python3 export.py --weights weights/yolov3-mini.pt --format onnx --dynamic
    python3 export.py --weights best.pt --format darknet
    python3 export.py --cfg cfg/yolov3-tiny.cfg --weights yolov3-tiny.weights --format onnx --nms
    python3 export.py --weights best.pt --format engine --half --device 0   # needs TensorRT
    python3 export.py --weights qat.pt --format openvino      # OpenVINO IR (.xml + .bin), int8
    python3 export.py --weights qat.pt --format onnx          # int8 Q/DQ graph (QAT/PTQ checkpoint)
    python3 export.py --weights best.pt --format onnx --int8 --calib-images data/shapes/train.txt
    python3 export.py --weights runs/ptq/exp/yolov3-mini_ptq_q8_max.pt --format c   # C99, MCUs

ONNX graphs take ``images`` (b, 3, h, w) float in [0, 1] and give ``boxes`` (b, n, 4) as x1 y1 x2
y2 in input pixels and ``scores`` (b, n, classes) = objectness x class probability; with --nms
also ``selected`` (k, 3) = (image, class, box index) from an ONNX NonMaxSuppression node.
A quantized checkpoint (train.py --quantized 1|3, quantize/ptq.py) becomes an int8 graph:
QuantizeLinear/DequantizeLinear pairs on activations (per tensor; int8 with zero point 0 for
TensorRT, or --qdq onnxruntime: uint8 and one more pair before each activation, which onnxruntime's
CPU kernels need to fuse; --qdq openvino: TensorRT's with weights within +-63) and int8 weights
per output channel (axis 0), BN folded in; quantize/qdq.py says where each pair sits. An
OpenVINO IR is converted from that ONNX graph (float or int8). Outputs go to runs/export/exp*/
(a new folder each run).
"""
from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from models.cfg import save_cfg
from models.darknet import is_quantized
from models.dialect import DARKNET_FALLBACK, EXTENSION_ACTIVATIONS
from models.onnx_model import OnnxModel
from models.openvino_model import OpenVinoModel
from models.sparse24 import sparse_weights
from models.weights import load_checkpoint, save_darknet_weights
from quantize.deploy_check import check_graph, synthetic_batches
from quantize.export_c import export_c
from quantize.export_int import FORMATS as INT_FORMATS
from quantize.export_int import integer_model
from quantize.loader import load_model
from quantize.qat import cfg_precisions, set_quant_enabled
from quantize.qdq import (TARGETS, QDQError, dequantized_model, exact_int8_weights_here,
                          has_form, int8_initializers, onnxruntime_target, qdq_model)
from utils.cli import friendly_errors
from utils.datasets import parse_data_cfg
from utils.errors import ToolkitError
from utils.files import atomic_path, atomic_write_text, whole_or_none
from utils.log import LOGGER
from utils.options import Parser, add_shared, at_least
from utils.runs import increment_path
from utils.torch_utils import DeviceError, select_device

FORMATS = ('darknet', 'onnx', 'openvino', 'engine', 'c')
MIN_OPSET = 11  # Resize and dynamic Slice as exported; Q/DQ per channel needs 13
MIN_OPSET_INT8 = 13
CHECK_IMAGES = 8  # images the int8 check runs


class ExportError(ToolkitError, RuntimeError):
    """An export that cannot be done here; the message says why and what to do."""


def output_names(model):
    """The graph's outputs: boxes and scores for [yolo] heads, seg for a segmentation head."""
    return (['boxes', 'scores'] if model.yolo_layers else []) + \
        (['seg'] if model.seg_layers else [])


class DeployHead(nn.Module):
    """The network with its outputs in the form deployment code reads: corner boxes and scores,
    the heads decoded at once (Darknet.decode_parts) so the graph's tail is a dozen nodes; and
    the segmentation head's logits (b, classes, h, w) at its own output stride: argmax over the
    classes is the mask (softmax of them darknet's probabilities)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, images):
        heads = self.model.heads(images)
        out = ()
        if self.model.yolo_layers:
            xy, g, wh_gain, obj, cls = self.model.decode_parts(heads, images.shape[-2:])
            half = g * (wh_gain / 2)
            # corners by concatenation: xywh2xyxy's in-place column writes export as four
            # ScatterND nodes, which onnxruntime runs slowly
            out = (torch.cat((xy - half, xy + half), -1), cls * obj)
        if self.model.seg_layers:
            out = out + (self.model.seg_logits(heads),)
        return out


def darknet_fallbacks(model):
    """[(layer, activation)] of the layers whose activation AlexeyAB's darknet does not have:
    it prints a line and runs ReLU in their place."""
    return [(i, b.options['activation']) for i, b in enumerate(model.blocks[1:])
            if b.options.get('activation') in EXTENSION_ACTIVATIONS]


def export_darknet(model, stem):
    odd = darknet_fallbacks(model)
    if odd:
        shown = ', '.join(f'{i} ({a})' for i, a in odd[:8]) + (' ...' if len(odd) > 8 else '')
        LOGGER.warning(f'WARNING: darknet has no {"/".join(sorted({a for _, a in odd}))}: it will '
                       f'run {DARKNET_FALLBACK} in layers {shown} ({len(odd)} layers), so the '
                       f'exported network computes something else in darknet')
    if is_quantized(model):
        LOGGER.warning('WARNING: darknet .weights hold floats: writing the dequantized weights of '
                       'this quantized model (its activations will run in float)')
        model = dequantized_model(model)
    save_cfg(model.blocks, f'{stem}.cfg')
    save_darknet_weights(model, f'{stem}.weights')
    return [f'{stem}.cfg', f'{stem}.weights']


def export_onnx(model, stem, img_hw, batch=1, dynamic=False, opset=17, nms=False,
                simplify=False, iou_thres=0.45, conf_thres=0.25, max_det=300, qdq='tensorrt'):
    """Write an ONNX graph; a quantized model becomes an int8 Q/DQ graph (quantize/qdq.py)."""
    import onnx  # noqa: PLC0415 (optional dependency, needed only here)

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
        import openvino as ov  # noqa: PLC0415 (optional dependency, needed only here)
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
    from onnx import TensorProto, helper  # noqa: PLC0415

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
        import onnxslim  # noqa: PLC0415
    except ImportError:
        raise ExportError('--simplify needs onnxslim: pip install onnxslim') from None
    return onnxslim.slim(graph)


def export_engine(model, stem, img_hw, batch=1, half=False, device=None, int8=False, dla=None,
                  **onnx_kw):
    """A serialized TensorRT engine built from the ONNX export: fp32, fp16 (--half) or int8 from
    the Q/DQ graph of a quantized model (explicit quantization: TensorRT takes our scales)."""
    try:
        import tensorrt as trt  # noqa: PLC0415
    except ImportError:
        raise ExportError('--format engine needs TensorRT, which is not installed: on a machine '
                          'with an NVIDIA GPU run `pip install tensorrt` (or use the JetPack '
                          'one on Jetson), or export --format onnx and build with trtexec') \
            from None
    if device is None or device.type != 'cuda':
        raise ExportError('--format engine needs a CUDA device (--device 0)')
    onnx_path = export_onnx(model, stem, img_hw, batch, **onnx_kw)[0]
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = '; '.join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(f'{onnx_path}: TensorRT could not parse it: {errors}')
    config = builder.create_builder_config()
    if half:
        config.set_flag(trt.BuilderFlag.FP16)
    if int8:
        config.set_flag(trt.BuilderFlag.INT8)
    if sparse_weights(model):  # 2:4 convs: let the tactics use sparse tensor cores
        config.set_flag(trt.BuilderFlag.SPARSE_WEIGHTS)
    pins = precision_pins(model, [network.get_layer(k).name for k in range(network.num_layers)])
    if pins:
        _pin_precisions(trt, network, config, pins)
    if dla is not None:
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = dla
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    engine = builder.build_serialized_network(network, config)
    if engine is None:
        raise ExportError(f'{onnx_path}: TensorRT failed to build an engine (see its log above)')
    path = f'{stem}.engine'
    with atomic_path(path) as tmp:
        tmp.write_bytes(bytes(engine))
    return [onnx_path, path]


FLOAT_PINS = ('fp16', 'fp32')


def precision_pins(model, layer_names) -> dict:
    """{layer name: 'fp16' | 'fp32'} for the graph layers of the convs whose cfg says
    precision=fp16|fp32. The ONNX exporter names a conv's nodes /module_list.<i>/..., and
    TensorRT's parser keeps node names; int8 layers need no pin (their Q/DQ say it)."""
    wanted = {i: p for i, p in cfg_precisions(model).items() if p in FLOAT_PINS}
    pins = {}
    for name in layer_names:
        m = re.match(r'/module_list\.(\d+)/', name)
        if m and int(m.group(1)) in wanted:
            pins[name] = wanted[int(m.group(1))]
    return pins


def _pin_precisions(trt, network, config, pins):
    """The cfg's float precisions, obeyed: the builder fails rather than override one."""
    types = {'fp16': trt.float16, 'fp32': trt.float32}
    if 'fp16' in pins.values():
        config.set_flag(trt.BuilderFlag.FP16)
    config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
    for k in range(network.num_layers):
        layer = network.get_layer(k)
        if layer.name in pins:
            layer.precision = types[pins[layer.name]]
            for o in range(layer.num_outputs):
                layer.set_output_type(o, types[pins[layer.name]])


def onnx_runners(model, size, batches, device, tmp, backend='onnxruntime fp32', threads=0):
    """The ONNX export of a model (an int8 Q/DQ graph for onnxruntime when the model is
    quantized), one static graph per batch size: what deployments run, and onnxruntime plans
    static shapes better (docs/results/latency.md). A fresh session per block,
    so that no idle session's threads compete with the one being timed."""
    import onnxruntime as ort  # noqa: PLC0415

    providers = ['CPUExecutionProvider']
    if device.type == 'cuda':  # a CPU-only onnxruntime runs there on the CPU: say so in the row
        if 'CUDAExecutionProvider' in ort.get_available_providers():
            providers.insert(0, 'CUDAExecutionProvider')
        else:
            backend += ' (CPU)'
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads  # 0: onnxruntime's default, one per core

    def write(cpu_model, stem, b):
        return export_onnx(cpu_model, stem, (size, size), batch=b, qdq=onnxruntime_target())[0]

    def open_graph(path):
        sess = ort.InferenceSession(path, options, providers=providers)
        return lambda x: sess.run(None, {'images': x})
    yield from _graph_runners(model, size, batches, tmp, backend, write, open_graph)


def openvino_runners(model, size, batches, tmp, backend='openvino fp32', threads=0):
    """The OpenVINO IR of a model (int8 layers from its --qdq openvino graph when it is
    quantized), one static graph per batch size, on the CPU; a freshly compiled model per
    block, as onnx_runners."""
    def write(cpu_model, stem, b):
        return export_openvino(cpu_model, stem, (size, size), batch=b, qdq='openvino')[0]
    yield from _graph_runners(model, size, batches, tmp, backend, write,
                              lambda path: OpenVinoModel(path, threads).raw)


def _graph_runners(model, size, batches, tmp, backend, write, open_graph):
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


def int8_model(model, calib_images, calib, method, img_size, device):
    """A float model calibrated now (quantize/ptq.py's calibrators) for an int8 export."""
    from quantize.ptq import calibrated, calibration_batches  # noqa: PLC0415

    batches = calibration_batches(calib_images, model.nc, calib, img_size, 16, device, 2)
    LOGGER.info(f'calibrated int8 ranges on {sum(len(b) for b in batches)} images ({method})')
    return calibrated(model, batches, method)


def qdq_candidates(fmt, qdq, model):
    """The Q/DQ flavours to try, best first: the one asked for, or for onnxruntime the
    tensorrt graph then this CPU's exact onnxruntime one, for OpenVINO its symmetric graph
    (7-bit weights where the CPU lacks VNNI) then the uint8-activation ones; those the model
    has a form for (zero points: the onnxruntime ones only)."""
    if qdq:
        return [qdq]
    if fmt == 'openvino':
        symmetric = 'tensorrt' if exact_int8_weights_here() else 'openvino'
        order = [symmetric, onnxruntime_target(), 'onnxruntime-u8']
    else:
        order = ['tensorrt', onnxruntime_target()]
    return [t for t in order if has_form(model, t)]


def check_batches(weights, check_images, img_hw, nc):
    """Images for the int8 check: --check-images, else the checkpoint's calibration or
    training images, else synthetic ones (said so)."""
    from quantize.ptq import calibration_batches  # noqa: PLC0415

    source = check_images or recorded_images(weights)
    if source:
        return calibration_batches(source, nc, CHECK_IMAGES, img_hw[0], CHECK_IMAGES, 'cpu', 0,
                                   prefix='int8 check: ')
    LOGGER.info('int8 check: no images recorded in the checkpoint; checking on synthetic '
                'images (give --check-images for photos like those it will see)')
    return synthetic_batches(CHECK_IMAGES, img_hw)


def recorded_images(weights):
    """The images a PTQ checkpoint was calibrated on, or a QAT run's training images."""
    if not str(weights).endswith('.pt'):
        return ''
    ckpt = load_checkpoint(weights)
    source = (ckpt.get('ptq') or {}).get('source', '')
    data = (ckpt.get('opt') or {}).get('data')
    if not source and data and Path(data).is_file():
        with contextlib.suppress(ToolkitError):
            source = parse_data_cfg(data, generate=False).get('train', '')
    return source if source and Path(source).exists() else ''


def checked_qdq(model, fmt, img_hw, qdq, batches):
    """The Q/DQ flavour whose graph, in the runtime it is for, computes the fake-quant model
    on ``batches`` (quantize/deploy_check.py), and its verdict: --qdq when it passes, else the
    first of qdq_candidates that does; an ExportError naming where the graph parts when none
    may be used."""
    runtime = 'OpenVINO' if fmt == 'openvino' else 'onnxruntime'
    cpu = copy.deepcopy(model).float().cpu().eval()
    float_model = copy.deepcopy(cpu)
    set_quant_enabled(float_model, False)  # exactly the float network (tests/test_quantize.py)

    def verdict_of(target):
        with tempfile.TemporaryDirectory(prefix='.check.') as tmp:
            onnx_path = export_onnx(cpu, Path(tmp) / 'check', img_hw, qdq=target)[0]
            if fmt == 'openvino':
                xml = export_openvino(cpu, Path(tmp) / 'check', img_hw, qdq=target)[0]
                graph = lambda: OpenVinoModel(xml)  # noqa: E731
            else:
                graph = lambda: OnnxModel(onnx_path)  # noqa: E731
            return check_graph(onnx_path, runtime.lower(), qdq_model(cpu, target), float_model,
                               batches, graph)

    failures = []
    for target in qdq_candidates(fmt, qdq, model):
        verdict = verdict_of(target)
        if verdict.ok:
            if failures:
                LOGGER.info(f'int8 check: {failures[0]}; --qdq {target} passes here, using it')
            return target, verdict
        where = ''
        if verdict.layer is not None:
            where = (f', outputs part at layer {verdict.layer} '
                     f'({model.blocks[verdict.layer + 1].type})')
        failures.append(f'--qdq {target} in {runtime} on this CPU is not the fake-quant model '
                        f'(99% of live scores within {verdict.q99:.3f}, at most '
                        f'{verdict.allowed:.3f} allowed{where})')
    if not qdq:
        raise ExportError(f'no int8 graph passes here: {"; ".join(failures)}; nothing written '
                          '(--no-check writes one anyway)')
    passing = next((t for t in qdq_candidates(fmt, None, model) if t != qdq and
                    verdict_of(t).ok), None)
    hint = f'; --qdq {passing} passes here' if passing else ''
    raise ExportError(f'{failures[0]}; nothing written{hint} (--no-check writes it anyway)')


def check_options(fmt, batch, dla, int_format):
    """Flags that do not go together, refused before the model is loaded."""
    if fmt not in FORMATS:
        raise ExportError(f"--format must be one of {', '.join(FORMATS)}, got '{fmt}'")
    if batch < 1:
        raise ExportError(f'--batch must be 1 or more, got {batch}')
    if dla is not None and fmt != 'engine':
        raise ExportError('--dla picks the DLA core of a TensorRT engine: it needs --format '
                          'engine')
    if int_format and fmt != 'c':
        raise ExportError("--int-format is the C project's number format: it needs --format c")


def run(weights='weights/yolov3-mini.pt', cfg='', fmt='onnx', img_size=None, batch=1,
        dynamic=False, half=False, int8=False, qdq=None, calib_images='', calib=256,
        calib_method='entropy', dla=None, opset=17, nms=False, simplify=False, int_format='',
        device='', project='runs/export', name='exp', exist_ok=False, check=True,
        check_images=''):
    """Export; returns the list of files written."""
    check_options(fmt, batch, dla, int_format)
    device = select_device(device)
    if half and device.type != 'cuda':
        raise DeviceError('--half exports fp16, which needs a CUDA --device')
    model = load_model(weights, cfg or None).to(device).eval()
    img_hw = export_size(img_size, model)
    int8 = (int8 or is_quantized(model)) and fmt != 'darknet'
    if int8 and fmt in ('onnx', 'engine') and opset < MIN_OPSET_INT8:
        raise ExportError(f'--opset {opset}: an int8 graph (QuantizeLinear per channel) needs '
                          f'{MIN_OPSET_INT8} or more')
    if int8 and not is_quantized(model) and not calib_images:
        raise ExportError('--int8 on a float checkpoint calibrates it: give --calib-images (a '
                          'list file, folder or glob of representative images), or export a '
                          'QAT / quantize/ptq.py checkpoint')
    save_dir = increment_path(project, name, exist_ok)  # an unwritable folder fails before work
    if int8 and not is_quantized(model):
        model = int8_model(model, calib_images, calib, calib_method, img_hw[0], device)
    verdict = None
    if int8 and fmt in ('onnx', 'openvino') and check:
        batches = check_batches(weights, check_images or calib_images, img_hw, model.nc)
        qdq, verdict = checked_qdq(model, fmt, img_hw, qdq, batches)
    qdq = qdq or (qdq_candidates(fmt, None, model)[0] if int8 else None)
    stem = save_dir / Path(weights).stem
    if half:
        model = model.half()
    onnx_kw = {'dynamic': dynamic, 'opset': opset, 'nms': nms, 'simplify': simplify,
               'qdq': qdq}
    outputs = [f'{stem}{suffix}'
               for suffix in ('.cfg', '.weights', '.onnx', '.xml', '.bin', '.engine', '_c')]
    with whole_or_none(outputs):  # export.json, written last, says the set is whole
        if fmt == 'darknet':
            files = export_darknet(model.float(), stem)
        elif fmt == 'c':
            files = export_c_project(model, stem, img_hw, int_format)
        elif fmt == 'onnx':
            files = export_onnx(model, stem, img_hw, batch, **onnx_kw)
        elif fmt == 'openvino':
            files = export_openvino(model, stem, img_hw, batch, **onnx_kw)
        else:
            files = export_engine(model, stem, img_hw, batch, half, device, int8, dla, **onnx_kw)
        atomic_write_text(save_dir / 'export.json', json.dumps(
            {'weights': str(weights), 'format': fmt, 'img_size': list(img_hw), 'batch': batch,
             'dynamic': dynamic, 'half': half, 'int8': int8, 'qdq': qdq if int8 else None,
             'nms': nms, 'files': files, 'int8_check': verdict and vars(verdict)}, indent=2))
    LOGGER.info(f"exported {', '.join(files)}")
    return files


def export_c_project(model, stem, img_hw, int_format=''):
    """The integer model (quantize/export_int.py) as a C99 project in <stem>_c/."""
    if not is_quantized(model):
        raise ExportError('--format c writes an integer model: export a QAT checkpoint or one of '
                          'quantize/ptq.py (--format s8, q8 or q16)')
    manifest, arrays = integer_model(model, int_format)
    return export_c(manifest, arrays, img_hw, f'{stem}_c')


def export_size(img_size, model, stride=32):
    """(h, w) from --img-size H [W] (default: the cfg's [net] size), multiples of the stride."""
    if not img_size:
        return tuple(model.img_size)
    sizes = [img_size] if isinstance(img_size, int) else list(img_size)
    if len(sizes) > 2 or any(v < stride or v % stride for v in sizes):
        raise ExportError(f'--img-size takes H [W], multiples of {stride} (the largest stride), '
                          f'got {" ".join(map(str, sizes))}')
    return sizes[0], sizes[-1]


def parser():
    p = Parser(prog='export.py', description=__doc__)
    add_shared(p, weights='weights/yolov3-mini.pt', cfg='', img_size=None, device='',
               project='runs/export', name='exp', exist_ok=False,
               notes={'img_size': 'or HEIGHT WIDTH'})
    p.add_argument('--format', dest='fmt', default='onnx', choices=FORMATS)
    p.add_argument('--batch', type=int, default=1, help='batch size of a static graph')
    p.add_argument('--dynamic', action='store_true', help='ONNX: dynamic batch and image size')
    p.add_argument('--half', action='store_true', help='fp16 (CUDA)')
    p.add_argument('--int8', action='store_true',
                   help='int8 Q/DQ: calibrate a float checkpoint on --calib-images (QAT and PTQ '
                        'checkpoints are int8 already)')
    p.add_argument('--qdq', default=None, choices=TARGETS,
                   help='int8: the engine the Q/DQ graph is for (quantize/qdq.py; default: the '
                        'first that passes the int8 check here: tensorrt, then this CPU\'s '
                        'onnxruntime flavour; for OpenVINO its symmetric graph, then uint8 '
                        'activations); onnxruntime-u8: uint8 weights, exact on any x86 CPU')
    p.add_argument('--no-check', dest='check', action='store_false',
                   help='int8: write the graph without checking it against the fake-quant '
                        'model in its runtime here (e.g. for another CPU)')
    p.add_argument('--check-images', default='',
                   help='int8 check: images (list, folder or glob; default: the ones the '
                        'checkpoint was calibrated or trained on, else synthetic)')
    p.add_argument('--calib-images', default='', help='--int8: image list file, folder or glob')
    p.add_argument('--calib', type=at_least(1), default=256, help='--int8: calibration images')
    p.add_argument('--calib-method', default='entropy',
                   choices=['max', 'percentile', 'mse', 'entropy'])
    p.add_argument('--dla', type=int, default=None, help='engine: DLA core (Jetson)')
    p.add_argument('--opset', type=at_least(MIN_OPSET), default=17,
                   help=f'ONNX opset, {MIN_OPSET} or more ({MIN_OPSET_INT8} or more for int8)')
    p.add_argument('--nms', action='store_true', help='ONNX: add a NonMaxSuppression node')
    p.add_argument('--simplify', action='store_true', help='ONNX: simplify with onnxslim')
    p.add_argument('--int-format', default='', choices=['', *INT_FORMATS],
                   help='c: number format (default: the one the checkpoint fits)')
    return p


def parse_opt(argv=None):
    return parser().parse_args(argv)


@friendly_errors
def main(argv=None):
    run(**vars(parse_opt(argv)))


if __name__ == '__main__':
    main()
