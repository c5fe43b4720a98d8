"""Post-training quantization: a TensorRT-style int8 checkpoint from float weights, no training.

    python3 quantize/ptq.py --weights weights/yolov3-mini.pt --calib 256 --method entropy
    python3 -m quantize.ptq --cfg yolov3.cfg --weights yolov3.weights --data coco.data
    python3 quantize/ptq.py --format q16 --method max        # for quantize/export_int.py

Weights: symmetric per output channel from their own max. Activations: symmetric per tensor,
amax from ``--calib`` training images by ``--method`` (max, percentile, mse, entropy; see
quantize/calibrate.py); route and shortcut inputs share one scale. ``--format`` aims at a
fixed-point format of quantize/export_int.py: s8 (the default, as above), q8 (power-of-two scales,
BN folded into the weights, so requantizing is a shift) or q16 (the same with 16-bit weights and
activations; ``--method max`` suits 16 bits, the histogram methods are tuned for 8). Writes
``<stem>_ptq_<method>.pt`` (``<stem>_ptq_<format>_<method>.pt`` for q8 and q16; loadable by
test.py, detect.py, export.py and train.py --resume-free fine-tuning) and ptq.json with the
float and quantized mAP into runs/ptq/exp*.
"""
from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

from models.weights import load_model, save_checkpoint
from quantize.calibrate import METHODS, calibrate, calibration_batches
from quantize.config import QuantConfig, QuantMode
from quantize.formats import FORMATS
from quantize.equalize import equalize as equalize_ranges
from quantize.qat import quantize_model
from utils.cli import friendly_errors
from utils.datasets import create_dataloader, parse_data_cfg
from utils.errors import OptionError
from utils.evaluate import evaluate_model, headline
from utils.files import atomic_write_text, whole_or_none
from utils.log import LOGGER
from utils.options import Parser, add_shared, keyword_options, one_size
from utils.runs import increment_path
from utils.torch_utils import select_device


# what quantize/ptq.py does unless told otherwise (chosen on COCO128 train2017,
# docs/results/real.md); compress.py's PTQ and bench/peers/compare.py's toolkit rows take them too
# (asymmetric applies to the int8 format without power-of-two scales: the fixed-point ones
# take symmetric ranges)
DEFAULTS = {'method': 'mse', 'asymmetric': True, 'equalize': True}



def calibrated(float_model, batches, method='entropy', percentile=99.99, fpga=False, fmt='s8',
               int8_heads=False, asymmetric=False, equalize=False):
    """A quantized copy of a float model (int8, or the fixed-point format fmt) with activation
    ranges from the batches: symmetric (mode 3), or affine with asymmetric (mode 1, for
    onnxruntime and OpenVINO); the heads' convs write float unless int8_heads (or a
    fixed-point format, whose runtimes need integer outputs); with equalize, the float model's
    channel ranges are equalized first (quantize/equalize.py)."""
    if asymmetric and fmt != 's8':
        raise OptionError(f'--asymmetric: the fixed-point format {fmt} takes symmetric ranges')
    float_heads = fmt == 's8' and not int8_heads
    mode = QuantMode.GOOGLE if asymmetric else QuantMode.TENSORRT
    config = QuantConfig(mode=mode, **{'fpga': fpga, 'float_heads': float_heads,
                                       'share_copies': True, **FORMATS[fmt].quant_config()})
    model = copy.deepcopy(float_model).eval()
    if equalize:
        pairs = equalize_ranges(model, batches)
        LOGGER.info(f'equalized the channel ranges of {pairs} conv pairs')
    model = quantize_model(model, config).eval()
    calibrate(model, batches, method, percentile)
    return model


@keyword_options
def run(weights='weights/yolov3-mini.pt', cfg='', data='data/shapes.data', calib=256,
        method=DEFAULTS['method'], percentile=99.99, fpga=False, format='s8', img_size=320,
        batch_size=16, device='', workers=2, eval=True, project='runs/ptq', name='exp',
        exist_ok=False, int8_heads=False, asymmetric=None, equalize=DEFAULTS['equalize']):
    """Calibrate; returns the ptq.json content. asymmetric None: the default where the format
    takes it."""
    if asymmetric is None:
        asymmetric = DEFAULTS['asymmetric'] and format == 's8' and not fpga
    if calib < 1:
        raise OptionError(f'--calib is a number of images, 1 or more, got {calib}')
    if not 0 < percentile <= 100:
        raise OptionError(f'--percentile must be in (0, 100], got {percentile}')
    device = select_device(device)
    data_cfg = parse_data_cfg(data)
    float_model = load_model(weights, cfg or None).float().to(device).eval()
    save_dir = increment_path(project, name, exist_ok)  # an unwritable folder fails before work
    batches = calibration_batches(data_cfg['train'], len(data_cfg['names']), calib, img_size,
                                  batch_size, device, workers)
    model = calibrated(float_model, batches, method, percentile, fpga, format, int8_heads,
                       asymmetric, equalize)
    tag = '' if format == 's8' else f'_{format}'
    path = save_dir / f'{Path(weights).stem}_ptq{tag}_{method}.pt'
    with whole_or_none([path]):  # ptq.json, written last, says the checkpoint is whole
        save_checkpoint({'cfg': model.cfg_text, 'model': model.state_dict(),
                         'quant': model.quant_config, 'names': data_cfg['names'],
                         'ptq': {'method': method, 'calib': calib, 'asymmetric': asymmetric,
                                 'equalize': equalize, 'int8_heads': int8_heads,
                                 'source': str(data_cfg['train'])}}, path)
        report = {'weights': str(weights), 'pt': str(path), 'method': method, 'calib': calib,
                  'format': format}
        if eval:
            report |= compare(float_model, model, data_cfg, img_size, batch_size, workers)
            change = ', '.join(f"{k} {report['float'][k]:.4f} -> {report['int8'][k]:.4f}"
                               for k in report['float'])
            LOGGER.info(f'float -> int8: {change} ({method}, {calib} images)')
        atomic_write_text(save_dir / 'ptq.json', json.dumps(report, indent=2))
    LOGGER.info(f'saved {path}')
    return report


def compare(float_model, model, data_cfg, img_size, batch_size, workers):
    """Headline metrics of the float and the calibrated model on the validation split."""
    loader, _ = create_dataloader(data_cfg['valid'], len(data_cfg['names']), img_size,
                                  batch_size, workers=workers, prefix='valid: ',
                                  seg_nc=model.seg_nc)
    return {key: headline(evaluate_model(m, loader, data_cfg['names'], verbose=False,
                                         plots=False, seg_names=data_cfg.get('seg_names')))
            for key, m in (('float', float_model), ('int8', model))}


def parser():
    p = Parser(prog='quantize/ptq.py', description=__doc__.splitlines()[0])
    add_shared(p, weights='weights/yolov3-mini.pt', cfg='', data='data/shapes.data',
               img_size=320, batch_size=16, device='', workers=2, project='runs/ptq',
               name='exp', exist_ok=False)
    p.add_argument('--calib', type=int, default=256, help='calibration images (training split)')
    p.add_argument('--method', default=DEFAULTS['method'], choices=METHODS)
    p.add_argument('--percentile', type=float, default=99.99)
    p.add_argument('--fpga', '--FPGA', action='store_true', help='power-of-two scales')
    p.add_argument('--format', default='s8', choices=list(FORMATS),
                   help='fixed-point target: s8 int8, q8 / q16 power-of-two with BN folded')
    p.add_argument('--int8-heads', action='store_true',
                   help="quantize the heads' conv outputs too (needed by quantize/export_int.py "
                        'with --format s8); by default they stay float, as engines run a '
                        "network's last conv")
    p.add_argument('--asymmetric', action=argparse.BooleanOptionalAction, default=None,
                   help='affine activation ranges (zero points, mode 1): for onnxruntime and '
                        'OpenVINO, not TensorRT (default: on for --format s8 without --fpga)')
    p.add_argument('--equalize', action=argparse.BooleanOptionalAction,
                   default=DEFAULTS['equalize'],
                   help="equalize the float model's channel ranges across conv pairs first "
                        '(cross-layer equalization; for depthwise networks)')
    p.add_argument('--eval', action=argparse.BooleanOptionalAction, default=True)
    return p


def parse_opt(argv=None):
    opt = parser().parse_args(argv)
    opt.img_size = one_size(opt.img_size, 320)
    return opt


@friendly_errors
def main(argv=None):
    run(**vars(parse_opt(argv)))


if __name__ == '__main__':
    main()
