"""Export a checkpoint for deployment: darknet cfg + weights, ONNX, or a TensorRT engine.

    python3 export.py --weights weights/yolov3-mini.pt --format onnx --dynamic
    python3 export.py --weights best.pt --format darknet
    python3 export.py --cfg cfg/yolov3-tiny.cfg --weights yolov3-tiny.weights --format onnx --nms
    python3 export.py --weights best.pt --format engine --half --device 0   # needs TensorRT
    python3 export.py --weights qat.pt --format onnx          # int8 Q/DQ graph (QAT/PTQ checkpoint)
    python3 export.py --weights best.pt --format onnx --int8 --calib-images data/shapes/train.txt

ONNX graphs take ``images`` (b, 3, h, w) float in [0, 1] and give ``boxes`` (b, n, 4) as x1 y1 x2
y2 in input pixels and ``scores`` (b, n, classes) = objectness x class probability; with --nms
also ``selected`` (k, 3) = (image, class, box index) from an ONNX NonMaxSuppression node.
A quantized checkpoint (train.py --quantized 1|3, quantize/ptq.py) becomes an int8 graph:
QuantizeLinear/DequantizeLinear pairs on activations (per tensor; int8 with zero point 0 for
TensorRT, or --qdq onnxruntime: uint8 and one more pair before each activation, which onnxruntime's
CPU kernels need to fuse) and int8 weights per output channel (axis 0), BN folded in;
quantize/qdq.py says where each pair sits. Outputs go to runs/export/exp*/ (a new folder each
run).
"""
from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import torch
from torch import nn

from models.cfg import save_cfg
from models.weights import load_model, save_darknet_weights
from quantize.qat import is_quantized
from quantize.qdq import QDQError, dequantized_model, int8_initializers, qdq_model
from utils.cli import friendly_errors
from utils.log import LOGGER
from utils.runs import increment_path
from utils.torch_utils import DeviceError, select_device

FORMATS = ('darknet', 'onnx', 'engine')


class ExportError(RuntimeError):
    """An export that cannot be done here; the message says why and what to do."""


class DeployHead(nn.Module):
    """The network with its outputs in the form deployment code reads: corner boxes and scores,
    the heads decoded at once (Darknet.decode_parts) so the graph's tail is a dozen nodes."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, images):
        xy, g, wh_gain, obj, cls = self.model.decode_parts(self.model.heads(images),
                                                           images.shape[-2:])
        half = g * (wh_gain / 2)
        # corners by concatenation: xywh2xyxy's in-place column writes export as four ScatterND
        # nodes (6% of yolov3-mini's int8 graph time at batch 1 in onnxruntime's profiler)
        return torch.cat((xy - half, xy + half), -1), cls * obj


def export_darknet(model, stem):
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
    x = torch.zeros(batch, model.in_channels, *img_hw, device=next(model.parameters()).device)
    axes = {'images': {0: 'batch', 2: 'height', 3: 'width'}, 'boxes': {0: 'batch', 1: 'anchors'},
            'scores': {0: 'batch', 1: 'anchors'}} if dynamic else None
    with warnings.catch_warnings():  # the tracer's notes on shape arithmetic; checked in tests
        warnings.simplefilter('ignore', category=torch.jit.TracerWarning)
        warnings.simplefilter('ignore', category=DeprecationWarning)
        torch.onnx.export(DeployHead(model).eval(), x, path, opset_version=opset, dynamo=False,
                          input_names=['images'], output_names=['boxes', 'scores'],
                          dynamic_axes=axes)
    graph = onnx.load(path)
    if int8:
        graph = int8_initializers(graph)
    if nms:
        graph = add_nms(graph, iou_thres, conf_thres, max_det)
    if simplify:
        graph = _simplify(graph)
    graph.producer_name = 'yolo-compression-toolkit'
    onnx.checker.check_model(graph)
    onnx.save(graph, path)
    return [path]


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
    if dla is not None:
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = dla
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    engine = builder.build_serialized_network(network, config)
    if engine is None:
        raise ExportError(f'{onnx_path}: TensorRT failed to build an engine (see its log above)')
    path = f'{stem}.engine'
    Path(path).write_bytes(bytes(engine))
    return [onnx_path, path]


def int8_model(model, calib_images, calib, method, img_size, device):
    """A float model calibrated now (quantize/ptq.py's calibrators) for an int8 export."""
    from quantize.ptq import calibrated, calibration_batches  # noqa: PLC0415

    if not calib_images:
        raise ExportError('--int8 on a float checkpoint calibrates it: give --calib-images (a '
                          'list file, folder or glob of representative images), or export a '
                          'QAT / quantize/ptq.py checkpoint')
    batches = calibration_batches(calib_images, model.nc, calib, img_size, 16, device, 2)
    LOGGER.info(f'calibrated int8 ranges on {sum(len(b) for b in batches)} images ({method})')
    return calibrated(model, batches, method)


def run(weights='weights/yolov3-mini.pt', cfg='', fmt='onnx', img_size=(320,), batch=1,
        dynamic=False, half=False, int8=False, qdq='tensorrt', calib_images='', calib=256,
        calib_method='entropy', dla=None, opset=17, nms=False, simplify=False, device='cpu',
        project='runs/export', name='exp', exist_ok=False):
    """Export; returns the list of files written."""
    if fmt not in FORMATS:
        raise ExportError(f"--format must be one of {', '.join(FORMATS)}, got '{fmt}'")
    device = select_device(device)
    if half and device.type != 'cuda':
        raise DeviceError('--half exports fp16, which needs a CUDA --device')
    model = load_model(weights, cfg or None).to(device).eval()
    img_hw = (img_size[0], img_size[-1])
    if int8 and fmt != 'darknet' and not is_quantized(model):
        model = int8_model(model, calib_images, calib, calib_method, img_hw[0], device)
    int8 = is_quantized(model) and fmt != 'darknet'
    save_dir = increment_path(project, name, exist_ok)
    stem = save_dir / Path(weights).stem
    if half:
        model = model.half()
    onnx_kw = {'dynamic': dynamic, 'opset': opset, 'nms': nms, 'simplify': simplify,
               'qdq': qdq}
    if fmt == 'darknet':
        files = export_darknet(model.float(), stem)
    elif fmt == 'onnx':
        files = export_onnx(model, stem, img_hw, batch, **onnx_kw)
    else:
        files = export_engine(model, stem, img_hw, batch, half, device, int8, dla, **onnx_kw)
    (save_dir / 'export.json').write_text(json.dumps(
        {'weights': str(weights), 'format': fmt, 'img_size': list(img_hw), 'batch': batch,
         'dynamic': dynamic, 'half': half, 'int8': int8, 'qdq': qdq if int8 else None,
         'nms': nms, 'files': files}, indent=2))
    LOGGER.info(f"exported {', '.join(files)}")
    return files


def parse_opt(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--weights', default='weights/yolov3-mini.pt', help='.pt or darknet .weights')
    p.add_argument('--cfg', default='', help='cfg of darknet --weights (a .pt holds its own)')
    p.add_argument('--format', dest='fmt', default='onnx', choices=FORMATS)
    p.add_argument('--img-size', nargs='+', type=int, default=[320], help='h [w]')
    p.add_argument('--batch', type=int, default=1)
    p.add_argument('--dynamic', action='store_true', help='ONNX: dynamic batch and image size')
    p.add_argument('--half', action='store_true', help='fp16 (CUDA)')
    p.add_argument('--int8', action='store_true',
                   help='int8 Q/DQ: calibrate a float checkpoint on --calib-images (QAT and PTQ '
                        'checkpoints are int8 already)')
    p.add_argument('--qdq', default='tensorrt', choices=['tensorrt', 'onnxruntime'],
                   help='int8: the engine the Q/DQ graph is for (quantize/qdq.py)')
    p.add_argument('--calib-images', default='', help='--int8: image list file, folder or glob')
    p.add_argument('--calib', type=int, default=256, help='--int8: calibration images')
    p.add_argument('--calib-method', default='entropy',
                   choices=['max', 'percentile', 'mse', 'entropy'])
    p.add_argument('--dla', type=int, default=None, help='engine: DLA core (Jetson)')
    p.add_argument('--opset', type=int, default=17)
    p.add_argument('--nms', action='store_true', help='ONNX: add a NonMaxSuppression node')
    p.add_argument('--simplify', action='store_true', help='ONNX: simplify with onnxslim')
    p.add_argument('--device', default='cpu')
    p.add_argument('--project', default='runs/export')
    p.add_argument('--name', default='exp')
    p.add_argument('--exist-ok', action='store_true')
    return p.parse_args(argv)


@friendly_errors
def main(argv=None):
    try:
        run(**vars(parse_opt(argv)))
    except ExportError as e:
        LOGGER.error(f'error: {e}')
        raise SystemExit(1) from None


if __name__ == '__main__':
    main()
