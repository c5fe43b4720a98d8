"""Does an int8 graph compute, in the runtime it is for and on this CPU, what its fake-quant model
computes? export.py asks before it writes one.

Runtimes do not all run a Q/DQ graph as written. Measured on two x86 CPUs (docs/results/real.md):
onnxruntime on AVX2 without VNNI multiplies uint8 activations by int8 weights with an
instruction that saturates (yolov3-tiny lost 22 points of mAP@0.5); OpenVINO 2026 on a CPU with
AVX-512 VNNI computes the concat of two symmetric int8 tensors on another grid (a quarter of the
live scores moved by more than 0.05, up to 0.48), while the same model's uint8 graph agrees.

The check: on a few images, every score above LIVE in either output is compared. The graph
passes when the 99th percentile of the differences is at most what quantization itself moves
those scores (the fake-quant model against the float one, same images; RATIO), or at most FLOOR.
Not less: a runtime breaks rounding ties its own way, and in a network that amplifies them
(Yolo-Fastest 1.1: tie breaks alone moved 0.1-0.2, quantization 0.25) exactness to the last
rounding is not there to ask for. The failures this is for are larger: OpenVINO's symmetric
graph of yolov3-tiny moved 0.25 where quantization moves 0.13, onnxruntime's saturating kernels
22 points of mAP. A graph that fails is examined layer by layer (every dequantized activation
exposed as an output) to name the first layer whose values part by more than one step.
"""
from __future__ import annotations

import contextlib
import copy
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from models.onnx_model import OnnxModel
from models.openvino_model import OpenVinoModel
from models.weights import load_checkpoint
from quantize.calibrate import calibration_batches
from quantize.graphs import ExportError, export_onnx, export_openvino
from quantize.qat import set_quant_enabled
from quantize.qdq import exact_int8_weights_here, has_form, onnxruntime_target, output_quantizers
from utils.datasets import parse_data_cfg
from utils.errors import ToolkitError
from utils.log import LOGGER

LIVE = 0.05    # scores that matter: above this in either model
RATIO = 1.0    # the runtime may move live scores at most as much as quantization does
FLOOR = 0.05   # ... or by this much, whatever quantization does
PARTED = 0.01  # a layer parts when this share of its values is off by more than one step
CHECK_IMAGES = 16  # images the check runs


@dataclass
class Verdict:
    ok: bool
    q99: float          # 99th percentile of |score difference| over live scores
    worst: float        # the largest difference
    live: int           # how many scores were compared
    allowed: float      # the bound q99 had to stay under
    noise: float        # q99 of what quantization moves (fake-quant against float)
    layer: int | None = None   # the first layer whose values part (when not ok and found)


def _scores(out):
    """Darknet-style decoded output (b, n, 5 + nc) -> scores (objectness x class)."""
    return (out[..., 4:5] * out[..., 5:]).float()


def _q99(diffs):
    d = np.concatenate(diffs) if diffs else np.zeros(0)
    return (float(np.quantile(d, 0.99)), float(d.max()), int(d.size)) if d.size else (0, 0, 0)


@torch.no_grad()
def compare(reference, candidate, float_model, batches) -> Verdict:
    """Scores of a candidate (the graph's runtime, behind models.onnx_model's interface)
    against the reference (the fake-quant model), on the scale of the reference against the
    float model."""
    runtime, quantization = [], []
    for x in batches:
        a, b, f = (_scores(m(x)[0]) for m in (reference, candidate, float_model))
        runtime.append((a - b).abs()[(a > LIVE) | (b > LIVE)].numpy())
        quantization.append((a - f).abs()[(a > LIVE) | (f > LIVE)].numpy())
    q99, worst, live = _q99(runtime)
    noise = _q99(quantization)[0]
    allowed = max(FLOOR, RATIO * noise)
    return Verdict(q99 <= allowed, q99, worst, live, allowed, noise)


def _module_index(name):
    match = re.search(r'module_list\.(\d+)/', name)
    return int(match.group(1)) if match else None


def _activation_outputs(graph):
    """{layer: the name of the last dequantized activation it writes} of an ONNX Q/DQ graph."""
    constants = {t.name for t in graph.graph.initializer}
    constants |= {n.output[0] for n in graph.graph.node if n.op_type == 'Constant'}
    out = {}
    for n in graph.graph.node:
        if n.op_type == 'DequantizeLinear' and n.input[0] not in constants:
            i = _module_index(n.output[0])
            if i is not None:
                out[i] = n.output[0]
    return out


def _run_with_outputs(onnx_path, runtime, names, x):
    """{name: value} of the graph's tensors ``names`` on input x, in ``runtime``."""
    import onnx

    if runtime == 'onnxruntime':
        import onnxruntime as ort
        graph = onnx.load(onnx_path)
        for name in names:
            graph.graph.output.append(
                onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
        session = ort.InferenceSession(graph.SerializeToString(),
                                       providers=['CPUExecutionProvider'])
        values = session.run(names, {session.get_inputs()[0].name: x})
        return dict(zip(names, values))
    import openvino as ov
    core = ov.Core()
    model = core.read_model(onnx_path)
    model.add_outputs(names)
    compiled = core.compile_model(model, 'CPU', {'INFERENCE_PRECISION_HINT': 'f32'})
    result = compiled(x)
    return {n: result[o] for o in compiled.outputs for n in o.get_names() if n in names}


@torch.no_grad()
def parting_layer(onnx_path, runtime, model, x):
    """The first layer whose dequantized output in ``runtime`` differs from the fake-quant
    model's by more than one step in more than PARTED of its values, or None."""
    import onnx

    outputs = _activation_outputs(onnx.load(onnx_path))
    grids = output_quantizers(model)
    seen = {}
    hooks = [model.module_list[i].register_forward_hook(
        lambda m, a, y, i=i: seen.__setitem__(i, y)) for i in outputs if grids[i] is not None]
    try:
        model(x)
    finally:
        for h in hooks:
            h.remove()
    values = _run_with_outputs(onnx_path, runtime, [outputs[i] for i in sorted(outputs)],
                               x.numpy())
    for i in sorted(seen):
        if outputs[i] not in values or values[outputs[i]].shape != seen[i].shape:
            continue
        steps = np.abs(values[outputs[i]] - seen[i].numpy()) / float(grids[i].params()[0])
        if (steps > 1.5).mean() > PARTED:
            return i
    return None


def check_graph(onnx_path, runtime, model, float_model, batches, open_graph) -> Verdict:
    """The verdict on one written graph; ``open_graph()`` gives the runtime's model (the ONNX
    file itself, or the IR converted from it), ``model`` is the fake-quant model the graph is
    of (a flavour that rounds elsewhere answers for it too), float_model the network
    unquantized."""
    verdict = compare(model, open_graph(), float_model, batches)
    if not verdict.ok:
        verdict.layer = parting_layer(onnx_path, runtime, model, batches[0][:1])
    return verdict


def synthetic_batches(n, size, seed=0):
    """Smooth random images, when no photos are at hand: every kernel runs, though on values
    unlike a camera's (docs/reference/export.md)."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, size[0] // 16 + 1, size[1] // 16 + 1, generator=g)
    return [torch.nn.functional.interpolate(low, size=size, mode='bilinear',
                                            align_corners=False).clamp(0, 1)]


def qdq_candidates(fmt, qdq, model):
    """The Q/DQ flavours to try, best first: the one asked for; else for onnxruntime the
    tensorrt graph, this CPU's fused onnxruntime one, then the exact uint8 one; for OpenVINO
    its symmetric graph (7-bit weights where the CPU lacks VNNI), the exact uint8 one, then the
    onnxruntime ones; those the model has a form for (zero points: not the symmetric ones)."""
    if qdq:
        return [qdq]
    if fmt == 'openvino':
        symmetric = 'tensorrt' if exact_int8_weights_here() else 'openvino'
        order = [symmetric, 'uint8', onnxruntime_target(), 'onnxruntime-u8']
    else:
        order = ['tensorrt', onnxruntime_target(), 'uint8']
    return [t for t in order if has_form(model, t)]


def check_batches(weights, check_images, img_hw, nc):
    """Images for the int8 check: --check-images, else the checkpoint's calibration or
    training images, else synthetic ones (said so)."""
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
            return check_graph(onnx_path, runtime.lower(), cpu, float_model, batches, graph)

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
