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

from export.formats import (check_options, export_c_project, export_darknet,
                            export_engine, export_size, int8_model, precision_pins)
from models.darknet import is_quantized
from quantize.deploy_check import check_batches, checked_qdq, qdq_candidates
from export.ncnn import export_ncnn
from export.options import ExportOptions
from quantize.graphs import MIN_OPSET_INT8, ExportError, export_onnx, export_openvino
from quantize.loader import load_model
from utils.cli import friendly_errors
from utils.files import atomic_write_text, whole_or_none
from utils.log import LOGGER
from utils.options import Parser
from utils.runs import increment_path
from utils.torch_utils import DeviceError, select_device

__all__ = ['ExportError', 'export_darknet', 'int8_model', 'main', 'parse_opt', 'parser',
           'precision_pins', 'run']


def run(**kw):
    """Export; returns the list of files written."""
    opt = ExportOptions.from_kwargs(**kw).validate()
    check_options(opt.fmt, opt.batch, opt.dla, opt.int_format, opt.int8)
    return export(opt)


def export(opt):
    """run's work once the options are checked."""
    weights, fmt, half, opset, calib_images = opt.weights, opt.fmt, opt.half, opt.opset, \
        opt.calib_images
    qdq = opt.qdq
    device = select_device(opt.device)
    if half and device.type != 'cuda' and fmt != 'ncnn':  # ncnn: fp16 storage, any device
        raise DeviceError('--half exports fp16, which needs a CUDA --device')
    model = load_model(weights, opt.cfg or None).to(device).eval()
    img_hw = export_size(opt.img_size, model)
    int8 = (opt.int8 or is_quantized(model)) and fmt != 'darknet'
    if int8 and fmt in ('onnx', 'engine') and opset < MIN_OPSET_INT8:
        raise ExportError(f'--opset {opset}: an int8 graph (QuantizeLinear per channel) needs '
                          f'{MIN_OPSET_INT8} or more')
    if int8 and not is_quantized(model) and not calib_images:
        raise ExportError('--int8 on a float checkpoint calibrates it: give --calib-images (a '
                          'list file, folder or glob of representative images), or export a '
                          'QAT / quantize/ptq.py checkpoint')
    # an unwritable folder fails before work
    save_dir = increment_path(opt.project, opt.name, opt.exist_ok)
    if int8 and not is_quantized(model):
        model = int8_model(model, calib_images, opt.calib, opt.calib_method, img_hw[0],
                           device)
    verdict = None
    if int8 and fmt in ('onnx', 'openvino') and opt.check:
        batches = check_batches(weights, opt.check_images or calib_images, img_hw, model.nc)
        qdq, verdict = checked_qdq(model, fmt, img_hw, qdq, batches)
    qdq = qdq or (qdq_candidates(fmt, None, model)[0] if int8 else None)
    stem = save_dir / Path(weights).stem
    if half and fmt != 'ncnn':  # ncnn's --half is its fp16 storage, written by pnnx
        model = model.half()
    onnx_kw = {'dynamic': opt.dynamic, 'opset': opset, 'nms': opt.nms, 'simplify': opt.simplify,
               'qdq': qdq}
    outputs = [f'{stem}{suffix}'
               for suffix in ('.cfg', '.weights', '.onnx', '.xml', '.bin', '.engine', '_c',
                              '.ncnn.param', '.ncnn.bin')]
    with whole_or_none(outputs):  # export.json, written last, says the set is whole
        if fmt == 'darknet':
            files = export_darknet(model.float(), stem)
        elif fmt == 'c':
            files = export_c_project(model, stem, img_hw, opt.int_format)
        elif fmt == 'onnx':
            files = export_onnx(model, stem, img_hw, opt.batch, **onnx_kw)
        elif fmt == 'openvino':
            files = export_openvino(model, stem, img_hw, opt.batch, **onnx_kw)
        elif fmt == 'ncnn':
            files = export_ncnn(model, stem, img_hw, half)
        else:
            files = export_engine(model, stem, img_hw, opt.batch, half, device, int8, opt.dla,
                                  **onnx_kw)
        atomic_write_text(save_dir / 'export.json', json.dumps(
            {'weights': str(weights), 'format': fmt, 'img_size': list(img_hw), 'batch': opt.batch,
             'dynamic': opt.dynamic, 'half': half, 'int8': int8, 'qdq': qdq if int8 else None,
             'nms': opt.nms, 'files': files, 'int8_check': verdict and vars(verdict)}, indent=2))
    LOGGER.info(f"exported {', '.join(files)}")
    return files


def parser():
    return ExportOptions.add_fields(Parser(prog='export.py', description=__doc__))


def parse_opt(argv=None):
    return parser().parse_args(argv)


@friendly_errors
def main(argv=None):
    run(**vars(parse_opt(argv)))
