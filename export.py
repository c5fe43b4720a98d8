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
import re
from pathlib import Path

from models.cfg import save_cfg
from models.darknet import is_quantized
from models.dialect import DARKNET_FALLBACK, EXTENSION_ACTIVATIONS
from models.sparse24 import sparse_weights
from models.weights import save_darknet_weights
from quantize.deploy_check import check_batches, checked_qdq, qdq_candidates
from quantize.export_c import export_c
from quantize.export_int import FORMATS as INT_FORMATS
from quantize.export_int import integer_model
from quantize.graphs import (MIN_OPSET, MIN_OPSET_INT8, ExportError, export_onnx,
                             export_openvino)
from quantize.loader import load_model
from quantize.qat import cfg_precisions
from quantize.qdq import TARGETS, dequantized_model
from utils.cli import friendly_errors
from utils.files import atomic_path, atomic_write_text, whole_or_none
from utils.log import LOGGER
from utils.options import MAX_IMG_SIZE, Parser, add_shared, at_least, size_problem
from utils.runs import increment_path
from utils.torch_utils import DeviceError, select_device

FORMATS = ('darknet', 'onnx', 'openvino', 'engine', 'c')


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


def int8_model(model, calib_images, calib, method, img_size, device):
    """A float model calibrated now (quantize/ptq.py's calibrators) for an int8 export."""
    from quantize.ptq import calibrated, calibration_batches  # noqa: PLC0415

    batches = calibration_batches(calib_images, model.nc, calib, img_size, 16, device, 2)
    LOGGER.info(f'calibrated int8 ranges on {sum(len(b) for b in batches)} images ({method})')
    return calibrated(model, batches, method)


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
    if len(sizes) > 2 or any(size_problem(v, stride) for v in sizes):
        raise ExportError(f'--img-size takes H [W], multiples of {stride} (the largest stride) '
                          f'up to {MAX_IMG_SIZE}, got {" ".join(map(str, sizes))}')
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


if __name__ == '__main__':
    main()
