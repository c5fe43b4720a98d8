"""Post-training quantization side by side: quantize/ptq.py's calibrators against
onnxruntime's quantize_static and NNCF's quantize, all on the same calibration images.

Every method starts from the same float checkpoint and ends as an int8 Q/DQ ONNX graph that
the same OnnxModel evaluates (mAP on the validation split) and onnxruntime times at batch 1.
The peers get the float graph export.py writes (the decoding head included) and their own
recommended settings: QDQ, per-channel weights, their default activation types.

Feeds docs/results/peers.md and real.md (through bench/peers/compare.py).
"""
from __future__ import annotations

import numpy as np

from models.onnx_model import OnnxModel
from quantize import graphs, deploy_check
from quantize.calibrate import METHODS
from quantize.ptq import DEFAULTS, calibrated, calibration_batches
from utils.evaluate import evaluate_on, headline

# (row, method, the op types it quantizes (None: all it can)). onnxruntime 1.32's quantize_static
# gives Entropy 128 bins and 128 quantized bins and forwards no bin count: it equals MinMax.
# By default it also quantizes the decoding head (Sigmoid, Exp, Mul, Add); Conv only is what
# quantize/qdq.py quantizes.
ORT_METHODS = (('MinMax', 'MinMax', None), ('Entropy', 'Entropy', None),
               ('Percentile', 'Percentile', None), ('MinMax, Conv only', 'MinMax', ['Conv']),
               ('Percentile, Conv only', 'Percentile', ['Conv']))


def calibration_arrays(model, data_cfg, n, img_size):
    """The same n letterboxed training images for every method: torch batches and numpy."""
    batches = calibration_batches(data_cfg['train'], model.nc, n, img_size, 16,
                                  next(model.parameters()).device, 0)
    return batches, [b.cpu().numpy() for b in batches]


def toolkit_graphs(model, batches, out, img_size):
    """(label, path) of an int8 graph per calibrator of quantize/ptq.py, with its other
    defaults, in the Q/DQ flavour export.py's int8 check passes for onnxruntime here."""
    size = (img_size, img_size)
    for method in METHODS:
        q = calibrated(model, batches, **(DEFAULTS | {'method': method})).cpu()
        target, _ = deploy_check.checked_qdq(q, 'onnx', size, None, batches[:1])
        path = graphs.export_onnx(q, out / f'toolkit_{method}', size, qdq=target)[0]
        default = ' (the default)' if method == DEFAULTS['method'] else ''
        yield f'toolkit ptq {method}{default}', path


class _Reader:
    """onnxruntime's CalibrationDataReader over the calibration images, one image at a time."""

    def __init__(self, arrays):
        self.items = iter([{'images': x[i:i + 1]} for x in arrays for i in range(len(x))])

    def get_next(self):
        return next(self.items, None)


def ort_graphs(float_path, arrays, out):
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = out / 'ort_prepared.onnx'  # the pre-processing onnxruntime's docs ask for
    quant_pre_process(str(float_path), str(prepared))
    for row, method, ops in ORT_METHODS:
        path = out / f"ort_{row.lower().replace(',', '').replace(' ', '_')}.onnx"
        quantize_static(str(prepared), str(path), _Reader(arrays), quant_format=QuantFormat.QDQ,
                        per_channel=True, calibrate_method=getattr(CalibrationMethod, method),
                        op_types_to_quantize=ops)
        yield f'onnxruntime quantize_static {row}', path


def nncf_graphs(float_path, arrays, out):
    import nncf
    import onnx

    images = [x[i:i + 1] for x in arrays for i in range(len(x))]
    dataset = nncf.Dataset(images, lambda x: {'images': x})
    quantized = nncf.quantize(onnx.load(str(float_path)), dataset, subset_size=len(images))
    path = out / 'nncf.onnx'
    onnx.save(quantized, str(path))
    yield 'nncf quantize', path


def peers_available():
    """{peer: None, or the one-line reason it is left out}."""
    notes = {}
    for peer, module, extra in (('onnxruntime', 'onnxruntime.quantization', 'onnxruntime'),
                                ('nncf', 'nncf', 'nncf')):
        try:
            __import__(module)
            notes[peer] = None
        except ImportError:
            notes[peer] = f'{peer} rows left out: pip install {extra} (or pip install -e .[peers])'
    return notes


def ptq_graphs(model, data_cfg, opt, out):
    """(label, path) of every int8 graph, the float graph first; notes on peers left out."""
    batches, arrays = calibration_arrays(model, data_cfg, opt.calib, opt.img_size)
    float_path = graphs.export_onnx(model.cpu(), out / 'float', (opt.img_size,) * 2)[0]
    written = [('float (onnxruntime fp32)', float_path)]
    written += toolkit_graphs(model, batches, out, opt.img_size)
    notes = peers_available()
    if notes['onnxruntime'] is None:
        written += ort_graphs(float_path, arrays, out)
    if notes['nncf'] is None:
        written += nncf_graphs(float_path, arrays, out)
    return written, [n for n in notes.values() if n]


def score(path, data, img_size):
    return headline(evaluate_on(OnnxModel(path), data, img_size, verbose=False, plots=False))


def onnx_runner(label, path, img_size, threads):
    x = np.random.rand(1, 3, img_size, img_size).astype(np.float32)

    def make():  # a fresh session per block, as graphs.onnx_runners
        graph = OnnxModel(path, threads)
        return lambda: graph.raw(x)
    return {'method': label, 'batch': 1}, make
