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

ONNX graphs and OpenVINO IRs are written by quantize/graphs.py (inputs and outputs described
there). A quantized checkpoint (train.py --quantized 1|3, quantize/ptq.py) becomes an int8 graph:
QuantizeLinear/DequantizeLinear pairs on activations (per tensor; int8 with zero point 0 for
TensorRT, or --qdq onnxruntime: uint8 and one more pair before each activation, which onnxruntime's
CPU kernels need to fuse; --qdq openvino: TensorRT's with weights within +-63) and int8 weights
per output channel (axis 0), BN folded in; quantize/qdq.py says where each pair sits. An
OpenVINO IR is converted from that ONNX graph (float or int8). An int8 graph is written only
once quantize/deploy_check.py has run it in its runtime here and found it computes the fake-quant
model. Outputs go to runs/export/exp*/ (a new folder each run).
"""
from __future__ import annotations

import json
from pathlib import Path

from export.formats import (FORMATS, check_options, export_c_project, export_darknet,
                            export_engine, export_size, int8_model, precision_pins)
from models.darknet import is_quantized
from quantize.deploy_check import check_batches, checked_qdq, qdq_candidates
from quantize.formats import FORMATS as INT_FORMATS
from quantize.graphs import (MIN_OPSET, MIN_OPSET_INT8, ExportError, export_onnx,
                             export_openvino)
from quantize.loader import load_model
from quantize.qdq import TARGETS
from utils.cli import friendly_errors
from utils.files import atomic_write_text, whole_or_none
from utils.log import LOGGER
from utils.options import Parser, add_shared, at_least, keyword_options
from utils.runs import increment_path
from utils.torch_utils import DeviceError, select_device

__all__ = ['ExportError', 'export_darknet', 'int8_model', 'main', 'parse_opt', 'parser',
           'precision_pins', 'run']


@keyword_options
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
                        'first that passes the int8 check here: tensorrt, this CPU\'s '
                        'onnxruntime flavour, uint8; for OpenVINO its symmetric graph, then '
                        'uint8, the onnxruntime ones); uint8: the fake-quant model exactly with '
                        'zero points; onnxruntime-u8: uint8 weights, exact on any x86 CPU')
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
