"""The formats beside ONNX and OpenVINO (quantize/graphs.py): darknet cfg + weights, TensorRT
engines with per-layer precision pins, C99 projects of the integer model; and the checks of
export's options."""
from __future__ import annotations

import re
from pathlib import Path

from models.cfg import save_cfg
from models.darknet import is_quantized
from models.dialect import DARKNET_FALLBACK, EXTENSION_ACTIVATIONS
from models.sparse24 import sparse_weights
from models.weights import save_darknet_weights
from quantize.export_c import export_c
from quantize.export_int import integer_model
from quantize.graphs import ExportError, export_onnx
from quantize.qat import cfg_precisions
from quantize.qdq import dequantized_model
from utils.files import atomic_path
from utils.log import LOGGER
from utils.options import MAX_IMG_SIZE, size_problem

FORMATS = ('darknet', 'onnx', 'openvino', 'engine', 'c', 'ncnn')


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
        import tensorrt as trt
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
    from quantize.ptq import calibrated, calibration_batches

    batches = calibration_batches(calib_images, model.nc, calib, img_size, 16, device, 2)
    LOGGER.info(f'calibrated int8 ranges on {sum(len(b) for b in batches)} images ({method})')
    return calibrated(model, batches, method)


def check_options(fmt, batch, dla, int_format, int8=False):
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
    if int8 and fmt == 'ncnn':
        raise ExportError('--format ncnn writes float graphs here (int8 from the toolkit\'s '
                          'scales is not written yet): drop --int8')


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
