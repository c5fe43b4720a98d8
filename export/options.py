"""export.py's options: every flag, its default, type and help in ExportOptions; flags that do
not go together are refused by export.formats.check_options."""
from __future__ import annotations

import dataclasses

from export.formats import FORMATS
from quantize.formats import FORMATS as INT_FORMATS
from quantize.graphs import MIN_OPSET, MIN_OPSET_INT8
from quantize.qdq import TARGETS
from utils.options import Options, at_least, field


@dataclasses.dataclass
class ExportOptions(Options):
    """Everything an export is told; export.run(**kw) and the command line build it."""
    weights: str = field('weights/yolov3-mini.pt', shared=True)
    cfg: str = field('', shared=True)
    fmt: str = field('onnx', '', flags=['--format'], choices=FORMATS)
    img_size: int | list | tuple | None = field(None, 'or HEIGHT WIDTH', shared=True)
    batch: int = field(1, 'batch size of a static graph', type=int)
    dynamic: bool = field(False, 'ONNX: dynamic batch and image size', action='store_true')
    half: bool = field(False, 'fp16 (CUDA; ncnn: fp16 weight storage)', action='store_true')
    int8: bool = field(False, 'int8 Q/DQ: calibrate a float checkpoint on --calib-images (QAT '
                       'and PTQ checkpoints are int8 already)', action='store_true')
    qdq: str | None = field(None, "int8: the engine the Q/DQ graph is for (quantize/qdq.py; "
                            "default: the first that passes the int8 check here: tensorrt, this "
                            "CPU's onnxruntime flavour, uint8; for OpenVINO its symmetric graph, "
                            'then uint8, the onnxruntime ones); uint8: the fake-quant model '
                            'exactly with zero points; onnxruntime-u8: uint8 weights, exact on '
                            'any x86 CPU', choices=TARGETS)
    calib_images: str = field('', '--int8: image list file, folder or glob')
    calib: int = field(256, '--int8: calibration images', type=at_least(1))
    calib_method: str = field('entropy', '', choices=['max', 'percentile', 'mse', 'entropy'])
    dla: int | None = field(None, 'engine: DLA core (Jetson)', type=int)
    opset: int = field(17, f'ONNX opset, {MIN_OPSET} or more ({MIN_OPSET_INT8} or more for '
                       'int8)', type=at_least(MIN_OPSET))
    nms: bool = field(False, 'ONNX: add a NonMaxSuppression node', action='store_true')
    simplify: bool = field(False, 'ONNX: simplify with onnxslim', action='store_true')
    int_format: str = field('', 'c: number format (default: the one the checkpoint fits)',
                            choices=['', *INT_FORMATS])
    device: str = field('', shared=True)
    project: str = field('runs/export', shared=True)
    name: str = field('exp', shared=True)
    exist_ok: bool = field(False, shared=True)
    check: bool = field(True, 'int8: write the graph without checking it against the '
                        'fake-quant model in its runtime here (e.g. for another CPU)',
                        flags=['--no-check'], action='store_false')
    check_images: str = field('', 'int8 check: images (list, folder or glob; default: the ones '
                              'the checkpoint was calibrated or trained on, else synthetic)')
