r"""Evaluate a network: detection (mAP@0.5, mAP@0.5:0.95, P, R, F1 per class) and, for networks
with a segmentation head, mIoU, IoU per class, pixel accuracy and frequency-weighted IoU.

    python3 test.py --weights weights/yolov3-mini.pt --data data/shapes.data
    python3 test.py --data data/voc.data --cfg cfg/yolov3-tiny.cfg --weights yolov3-tiny.weights
    python3 test.py --weights runs/export/exp/model.onnx      # an exported graph, in onnxruntime
    python3 test.py --data data/coco128.data --cfg cfg/yolov3-tiny.cfg \
        --weights weights/yolov3-tiny.weights --img-size 416 --darknet  # as darknet scores it

Metrics follow COCOeval (utils/evaluate.py, which train.py and the prune scripts run too).
``--darknet`` evaluates as darknet's ``detector map`` does: each image resized to the square
input (letterboxed only where the cfg's [net] says letter_box=1), confidence threshold 0.005, NMS
IoU 0.45 (DARKNET below); by default images are letterboxed, 0.001 and 0.6.
Results go to ``runs/test/exp*/``: metrics.json, PR and F1 curves, confusion matrix, and
predictions.json with ``--save-json``. ``--task study`` sweeps the input size.
"""
from __future__ import annotations

import dataclasses
import json

from quantize.loader import autocast_dtype, load_for_inference
from utils.cli import friendly_errors
from utils.datasets import DataError, create_dataloader, parse_data_cfg
from utils.errors import OptionError
from utils.evaluate import evaluate_model
from utils.files import atomic_write_text
from utils.log import LOGGER
from utils.options import Options, Parser, at_least, field, one_size, unit_float
from utils.plots import save_figure
from utils.runs import increment_path
from utils.torch_utils import select_device


# darknet's `detector map` (validate_detector_map): thresh .005, nms .45
DARKNET = {'conf_thres': 0.005, 'iou_thres': 0.45}
DEFAULT = {'conf_thres': 0.001, 'iou_thres': 0.6}


@dataclasses.dataclass
class TestOptions(Options):
    """Everything an evaluation is told; test.run(**kw) and the command line build it."""
    data: str = field('data/shapes.data', shared=True)
    weights: str | None = field(None, shared=True)
    cfg: str | None = field(None, shared=True)
    batch_size: int = field(16, shared=True)
    img_size: int | list | tuple | None = field(None, shared=True)
    conf_thres: float | None = field(None, 'default 0.001 (0.005 with --darknet)',
                                     type=unit_float)
    iou_thres: float | None = field(None, 'NMS IoU threshold, default 0.6 (0.45 with --darknet)',
                                    type=unit_float)
    task: str = field('val', '', choices=['val', 'test', 'study'])
    save_json: bool = field(False, 'write COCO predictions.json', action='store_true')
    project: str = field('runs/test', shared=True)
    name: str = field('exp', shared=True)
    exist_ok: bool = field(False, shared=True)
    device: str = field('', shared=True)
    workers: int | None = field(None, "default: train.py's (on a CPU a quarter of the cores: "
                                "workers beside the model's threads slow it, "
                                'docs/results/evaluation.md)', shared=True)
    max_det: int = field(300, 'detections kept per image', type=at_least(1))
    plots: bool = field(True, cli=False)
    verbose: bool = field(True, cli=False)
    amp: bool | None = field(None, shared=True)
    darknet: bool = field(False, "score as darknet's detector map: plain resize unless the cfg "
                          'says letter_box=1, confidence 0.005, NMS 0.45', action='store_true')


def run(**kw):
    """Load the model, evaluate it on the .data file's valid (or test) split, write a run folder;
    returns the metrics dict. amp: quantize.loader.autocast_dtype (None: where the hardware
    has it). darknet: score as darknet does (thresholds left None take DARKNET's)."""
    opt = TestOptions.from_kwargs(**kw).validate()
    defaults = DARKNET if opt.darknet else DEFAULT
    opt = opt.replace(conf_thres=defaults['conf_thres'] if opt.conf_thres is None
                      else opt.conf_thres,
                      iou_thres=defaults['iou_thres'] if opt.iou_thres is None else opt.iou_thres)
    if opt.task == 'study':
        return study(opt)
    return evaluate(opt)


def evaluate(opt):
    """One evaluation at one size (run's work once the options are whole)."""
    data, weights, darknet, verbose = opt.data, opt.weights, opt.darknet, opt.verbose
    conf_thres, iou_thres = opt.conf_thres, opt.iou_thres
    data_cfg = parse_data_cfg(data)
    names = data_cfg['names']
    device = select_device(opt.device)
    model = load_for_inference(weights, opt.cfg, device)
    amp_dtype = autocast_dtype(model, device, opt.amp, weights)
    size = one_size(opt.img_size, model.img_size[1] if model.img_size else None)
    if size is None:
        raise OptionError(f'{weights}: a dynamic graph takes any size: give --img-size')
    split = 'test' if opt.task == 'test' and 'test' in data_cfg else 'valid'
    if split not in data_cfg:
        raise DataError(f"{data}: no '{split}=' entry to evaluate on")
    if model.nc and model.nc != len(names):
        raise DataError(f'{data}: the dataset has {len(names)} classes but the model predicts '
                        f'{model.nc}')
    seg_nc = getattr(model, 'seg_nc', 0)
    if seg_nc and data_cfg['seg_classes'] != seg_nc:
        raise DataError(f"{data}: the model segments {seg_nc} classes, the dataset has "
                        f"{data_cfg['seg_classes']} (seg_classes= in the .data)")
    stretch = darknet and not getattr(model, 'letter_box', False)
    loader, _ = create_dataloader(data_cfg[split], len(names), size, opt.batch_size,
                                  workers=opt.workers,
                                  prefix=f'{split}: ', seg_nc=seg_nc, stretch=stretch)
    if verbose and darknet:
        LOGGER.info(f"darknet's scoring: images {'stretched' if stretch else 'letterboxed'} to "
                    f'{size}x{size}, confidence > {conf_thres}, NMS IoU {iou_thres}')
    save_dir = increment_path(opt.project, opt.name, opt.exist_ok)
    scoring = {'darknet': darknet, 'resize': 'stretch' if stretch else 'letterbox',
               'conf_thres': conf_thres, 'iou_thres': iou_thres, 'img_size': size}
    metrics = evaluate_model(model, loader, names, conf_thres, iou_thres, opt.max_det,
                             opt.save_json, save_dir, opt.plots, verbose,
                             data_cfg.get('seg_names'), amp_dtype,
                             extra={'scoring': scoring})
    if verbose:
        LOGGER.info(f'Results saved to {save_dir}')
    return metrics


def study(opt):
    """mAP and speed over a range of input sizes: study.json and study.png."""
    import matplotlib.pyplot as plt  # utils.plots chose the Agg backend
    save_dir = increment_path(opt.project, opt.name, opt.exist_ok)
    default = (load_for_inference(opt.weights, opt.cfg, 'cpu').img_size or [0, 320])[1]
    img_size = one_size(opt.img_size, default)
    sizes = list(range(max(64, img_size // 2 // 32 * 32), img_size * 3 // 2 + 1, 32))
    rows = []
    for size in sizes:
        m = evaluate(opt.replace(img_size=size, task='val', save_json=False,
                                 project=str(save_dir), name=f'size{size}', exist_ok=True,
                                 plots=False, verbose=False))
        rows.append({'img_size': size, 'map50': m['map50'], 'map50_95': m['map50_95'],
                     'ms': m['speed_ms']['total']})
        print(f"{size:5d}  mAP@0.5 {m['map50']:.3f}  mAP@0.5:0.95 {m['map50_95']:.3f}  "
              f"{m['speed_ms']['total']:.1f} ms/img")
    atomic_write_text(save_dir / 'study.json', json.dumps(rows, indent=2))
    fig, ax = plt.subplots(1, 2, figsize=(10, 4), tight_layout=True)
    ax[0].plot(sizes, [r['map50'] for r in rows], 'o-', label='mAP@0.5')
    ax[0].plot(sizes, [r['map50_95'] for r in rows], 'o-', label='mAP@0.5:0.95')
    ax[0].set(xlabel='input size', ylabel='mAP')
    ax[0].legend()
    ax[1].plot(sizes, [r['ms'] for r in rows], 'o-')
    ax[1].set(xlabel='input size', ylabel='ms per image')
    save_figure(fig, save_dir / 'study.png', 150)
    return rows


def parser():
    return TestOptions.add_fields(Parser(prog='test.py', description=__doc__))


def parse_opt(argv=None):
    return parser().parse_args(argv)


@friendly_errors
def main(argv=None):
    opt = parse_opt(argv)
    run(**vars(opt))


if __name__ == '__main__':
    main()
