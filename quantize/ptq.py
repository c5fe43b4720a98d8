"""Post-training quantization: a TensorRT-style int8 checkpoint from float weights, no training.

    python3 quantize/ptq.py --weights weights/yolov3-mini.pt --calib 256 --method entropy
    python3 -m quantize.ptq --cfg yolov3.cfg --weights yolov3.weights --data coco.data

Weights: symmetric per output channel from their own max. Activations: symmetric per tensor,
amax from ``--calib`` training images by ``--method`` (max, percentile, mse, entropy; see
quantize/calibrate.py); route and shortcut inputs share one scale. Writes ``<stem>_ptq_<method>.pt``
(loadable by test.py, detect.py, export.py and train.py --resume-free fine-tuning) and
ptq.json with the float and int8 mAP into runs/ptq/exp*.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

if __package__ in (None, ''):  # run as a file, not with -m: import from the repo root
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import test as evaluation
from models.weights import load_model, save_checkpoint
from quantize.calibrate import METHODS, calibrate
from quantize.config import QuantConfig
from quantize.qat import quantize_model
from utils.cli import friendly_errors
from utils.datasets import create_dataloader, parse_data_cfg
from utils.log import LOGGER
from utils.runs import increment_path
from utils.torch_utils import select_device


def calibration_batches(source, nc, n, img_size, batch_size, device, workers):
    """n images of a source (list file, folder or glob), as float batches in [0, 1]."""
    loader, _ = create_dataloader(source, nc, img_size, batch_size, workers=workers,
                                  shuffle=True, seed=0, prefix='calibration: ')
    batches, seen = [], 0
    for imgs, *_ in loader:
        batches.append(imgs[: n - seen].to(device).float() / 255)
        seen += len(batches[-1])
        if seen >= n:
            break
    return batches


def calibrated(float_model, batches, method='entropy', percentile=99.99, fpga=False):
    """A mode-3 int8 copy of a float model with activation ranges from the batches."""
    model = quantize_model(copy.deepcopy(float_model), QuantConfig(mode=3, fpga=fpga)).eval()
    calibrate(model, batches, method, percentile)
    return model


def run(weights='weights/yolov3-mini.pt', cfg='', data='data/shapes.data', calib=256,
        method='entropy', percentile=99.99, fpga=False, img_size=320, batch_size=16, device='',
        workers=2, eval=True, project='runs/ptq', name='exp', exist_ok=False):
    """Calibrate; returns the ptq.json content."""
    device = select_device(device)
    data_cfg = parse_data_cfg(data)
    float_model = load_model(weights, cfg or None).float().to(device).eval()
    batches = calibration_batches(data_cfg['train'], len(data_cfg['names']), calib, img_size,
                                  batch_size, device, workers)
    model = calibrated(float_model, batches, method, percentile, fpga)
    save_dir = increment_path(project, name, exist_ok)
    path = save_dir / f'{Path(weights).stem}_ptq_{method}.pt'
    save_checkpoint({'cfg': model.cfg_text, 'model': model.state_dict(),
                     'quant': model.quant_config, 'names': data_cfg['names'],
                     'ptq': {'method': method, 'calib': calib}}, path)
    report = {'weights': str(weights), 'pt': str(path), 'method': method, 'calib': calib}
    if eval:
        loader, _ = create_dataloader(data_cfg['valid'], len(data_cfg['names']), img_size,
                                      batch_size, workers=workers, prefix='valid: ')
        for key, m in (('float', float_model), ('int8', model)):
            r = evaluation.run(model=m, dataloader=loader, names=data_cfg['names'],
                               verbose=False, plots=False)
            report[key] = {'map50': round(r['map50'], 4), 'map50_95': round(r['map50_95'], 4)}
        LOGGER.info(f"mAP@0.5 float {report['float']['map50']:.4f} -> int8 "
                    f"{report['int8']['map50']:.4f} ({method}, {calib} images)")
    (save_dir / 'ptq.json').write_text(json.dumps(report, indent=2))
    LOGGER.info(f'saved {path}')
    return report


def parse_opt(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--weights', default='weights/yolov3-mini.pt')
    p.add_argument('--cfg', default='', help='cfg of darknet --weights (a .pt holds its own)')
    p.add_argument('--data', default='data/shapes.data')
    p.add_argument('--calib', type=int, default=256, help='calibration images (training split)')
    p.add_argument('--method', default='entropy', choices=METHODS)
    p.add_argument('--percentile', type=float, default=99.99)
    p.add_argument('--fpga', '--FPGA', action='store_true', help='power-of-two scales')
    p.add_argument('--img-size', type=int, default=320)
    p.add_argument('--batch-size', type=int, default=16)
    p.add_argument('--device', default='')
    p.add_argument('--workers', type=int, default=2)
    p.add_argument('--eval', action=argparse.BooleanOptionalAction, default=True)
    p.add_argument('--project', default='runs/ptq')
    p.add_argument('--name', default='exp')
    p.add_argument('--exist-ok', action='store_true')
    return p.parse_args(argv)


@friendly_errors
def main(argv=None):
    run(**vars(parse_opt(argv)))


if __name__ == '__main__':
    main()
