"""Evaluate a detector: mAP@0.5, mAP@0.5:0.95, P, R, F1 per class, speed.

    python3 test.py --weights weights/yolov3-mini.pt --data data/shapes.data

Metrics follow COCOeval (greedy matching by confidence, 101-point interpolated AP, mean over the
classes that have ground truth), so ``--save-json`` predictions scored by pycocotools agree.
P, R and F1 are taken at the confidence that maximizes the class-mean F1. Results go to
``runs/test/exp*/``: metrics.json, PR and F1 curves, confusion matrix, and predictions.json with
``--save-json``. ``run(model=..., dataloader=...)`` is what train.py and the prune scripts call.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from terminaltables import AsciiTable

from models.weights import load_model
from utils.boxes import scale_boxes, xywh2xyxy
from utils.cli import friendly_errors
from utils.datasets import DataError, create_dataloader, parse_data_cfg
from utils.log import LOGGER
from utils.metrics import DetectionStats
from utils.nms import non_max_suppression
from utils.plots import plot_confusion_matrix, plot_curves
from utils.runs import increment_path
from utils.torch_utils import select_device, time_sync


def coco_image_id(path):
    stem = Path(path).stem
    return int(stem) if stem.isnumeric() else stem


def to_coco(det, path):
    """Detections of one image (boxes already in original pixels) as COCO result dicts."""
    boxes = det[:, :4]
    image_id = coco_image_id(path)
    return [{'image_id': image_id, 'category_id': int(c), 'score': round(float(s), 5),
             'bbox': [round(float(x1), 3), round(float(y1), 3), round(float(x2 - x1), 3),
                      round(float(y2 - y1), 3)]}
            for (x1, y1, x2, y2), s, c in zip(boxes.tolist(), det[:, 4].tolist(),
                                              det[:, 5].tolist())]


@torch.no_grad()
def evaluate(model, dataloader, nc, device, conf_thres=0.001, iou_thres=0.6, max_det=300,
             collect_json=False):
    """Run the model over the loader; returns (metrics dict, COCO predictions, speed in ms)."""
    model.eval()
    stats, jdict = DetectionStats(nc), []
    t_infer = t_nms = 0.0
    seen = 0
    for imgs, targets, paths, shapes in dataloader:
        t0 = time_sync()
        imgs = imgs.to(device, non_blocking=True).float() / 255
        decoded = model(imgs)[0].float()
        t1 = time_sync()
        dets = non_max_suppression(decoded, conf_thres, iou_thres, max_det=max_det)
        t2 = time_sync()
        t_infer, t_nms = t_infer + t1 - t0, t_nms + t2 - t1
        hw = imgs.shape[2:]
        for k, det in enumerate(dets):
            # score in original pixels, as COCOeval does: detections are clipped to the image
            shape0, ratio_pad = shapes[k]
            det = det.cpu()
            det[:, :4] = scale_boxes(det[:, :4], hw, shape0, ratio_pad)
            t = targets[targets[:, 0] == k]
            boxes = xywh2xyxy(t[:, 2:6]) * torch.tensor([hw[1], hw[0], hw[1], hw[0]])
            labels = torch.cat((t[:, 1:2], scale_boxes(boxes, hw, shape0, ratio_pad)), 1)
            stats.update(det.numpy(), labels.numpy())
            if collect_json:
                jdict += to_coco(det, paths[k])
        seen += imgs.shape[0]
    speed = {'inference': 1000 * t_infer / max(seen, 1), 'nms': 1000 * t_nms / max(seen, 1)}
    speed['total'] = speed['inference'] + speed['nms']
    return stats, jdict, speed, seen


def metrics_dict(res, names, speed, n_images):
    per_class = []
    for c in res['classes']:
        per_class.append({
            'class': int(c), 'name': names[c], 'images': int(res['images_per_class'][c]),
            'targets': int(res['n_targets'][c]), 'precision': float(res['p_class'][c]),
            'recall': float(res['r_class'][c]), 'map50': float(res['ap'][c, 0]),
            'map50_95': float(res['ap'][c].mean()), 'f1': float(res['f1_class'][c])})
    return {'precision': res['precision'], 'recall': res['recall'], 'f1': res['f1'],
            'map50': res['map50'], 'map50_95': res['map50_95'],
            'images': n_images, 'targets': int(res['n_targets'].sum()),
            'conf_at_best_f1': res['conf_at_best_f1'], 'per_class': per_class,
            'speed_ms': {k: round(v, 3) for k, v in speed.items()}}


def print_table(m, title=''):
    fmt = (lambda x: f'{x:.3f}')  # noqa: E731
    rows = [['Class', 'Images', 'Targets', 'P', 'R', 'mAP@0.5', 'mAP@0.5:0.95', 'F1']]
    rows.append(['all', m['images'], m['targets'], fmt(m['precision']), fmt(m['recall']),
                 fmt(m['map50']), fmt(m['map50_95']), fmt(m['f1'])])
    for c in m['per_class']:
        rows.append([c['name'], c['images'], c['targets'], fmt(c['precision']),
                     fmt(c['recall']), fmt(c['map50']), fmt(c['map50_95']), fmt(c['f1'])])
    table = AsciiTable(rows, title)
    table.inner_heading_row_border = True
    print(table.table)
    s = m['speed_ms']
    print(f"Speed: {s['inference']:.1f} ms inference, {s['nms']:.1f} ms NMS, "
          f"{s['total']:.1f} ms total per image")


def run(data='data/shapes.data', weights=None, cfg=None, batch_size=16, img_size=320,
        conf_thres=0.001, iou_thres=0.6, task='val', save_json=False, project='runs/test',
        name='exp', exist_ok=False, device='', workers=2, max_det=300, model=None,
        dataloader=None, names=None, save_dir=None, plots=True, verbose=True):
    """Evaluate; returns the metrics dict (also written to save_dir/metrics.json).

    Called by train.py with model, dataloader and names (and save_dir=None: nothing is written).
    From the command line it loads the model, builds the loader and writes a run folder.
    """
    if task == 'study':
        return study(data, weights, cfg, batch_size, img_size, conf_thres, iou_thres, project,
                     name, exist_ok, device, workers, max_det)
    standalone = model is None
    if standalone:
        data_cfg = parse_data_cfg(data)
        names = data_cfg['names']
        device = select_device(device)
        model = _load(weights, cfg, device)
        split = 'test' if task == 'test' and 'test' in data_cfg else 'valid'
        if split not in data_cfg:
            raise DataError(f"{data}: no '{split}=' entry to evaluate on")
        dataloader, _ = create_dataloader(data_cfg[split], len(names), img_size, batch_size,
                                          workers=workers, prefix=f'{split}: ')
        save_dir = increment_path(project, name, exist_ok)
    else:
        device = next(model.parameters()).device
    if model.nc != len(names):
        raise DataError(f'{data}: the dataset has {len(names)} classes but the model predicts '
                        f'{model.nc}')
    stats, jdict, speed, n_images = evaluate(model, dataloader, len(names), device, conf_thres,
                                             iou_thres, max_det, collect_json=save_json)
    res = stats.compute()
    metrics = metrics_dict(res, names, speed, n_images)
    if verbose:
        print_table(metrics)
    if save_dir:
        save_dir = Path(save_dir)
        (save_dir / 'metrics.json').write_text(json.dumps(metrics, indent=2))
        if save_json:
            (save_dir / 'predictions.json').write_text(json.dumps(jdict))
        if plots:
            plot_curves(res['curves'], names, res['classes'], save_dir)
            plot_confusion_matrix(stats.confusion.matrix, names, save_dir)
        if standalone and verbose:
            LOGGER.info(f'Results saved to {save_dir}')
    return metrics


def _load(weights, cfg, device):
    """A checkpoint, darknet weights, an exported .onnx graph (run by onnxruntime) or random."""
    if weights and str(weights).endswith('.onnx'):
        from models.onnx_model import OnnxModel  # noqa: PLC0415 (onnxruntime is optional)
        return OnnxModel(weights)
    return load_model(weights, cfg).to(device) if weights else _random_model(cfg)


def _random_model(cfg):
    from models.darknet import Darknet  # noqa: PLC0415
    if cfg is None:
        raise DataError('give --weights (a .pt or darknet .weights with --cfg) or at least --cfg')
    LOGGER.warning(f'WARNING: no --weights, evaluating {cfg} with random initial weights')
    return Darknet(cfg)


def study(data, weights, cfg, batch_size, img_size, conf_thres, iou_thres, project, name,
          exist_ok, device, workers, max_det):
    """mAP and speed over a range of input sizes: study.json and study.png."""
    import matplotlib.pyplot as plt  # noqa: PLC0415 (utils.plots chose the Agg backend)
    save_dir = increment_path(project, name, exist_ok)
    sizes = list(range(max(64, img_size // 2 // 32 * 32), img_size * 3 // 2 + 1, 32))
    rows = []
    for size in sizes:
        m = run(data, weights, cfg, batch_size, size, conf_thres, iou_thres, 'val', False,
                str(save_dir), f'size{size}', True, device, workers, max_det, plots=False,
                verbose=False)
        rows.append({'img_size': size, 'map50': m['map50'], 'map50_95': m['map50_95'],
                     'ms': m['speed_ms']['total']})
        print(f"{size:5d}  mAP@0.5 {m['map50']:.3f}  mAP@0.5:0.95 {m['map50_95']:.3f}  "
              f"{m['speed_ms']['total']:.1f} ms/img")
    (save_dir / 'study.json').write_text(json.dumps(rows, indent=2))
    fig, ax = plt.subplots(1, 2, figsize=(10, 4), tight_layout=True)
    ax[0].plot(sizes, [r['map50'] for r in rows], 'o-', label='mAP@0.5')
    ax[0].plot(sizes, [r['map50_95'] for r in rows], 'o-', label='mAP@0.5:0.95')
    ax[0].set(xlabel='input size', ylabel='mAP')
    ax[0].legend()
    ax[1].plot(sizes, [r['ms'] for r in rows], 'o-')
    ax[1].set(xlabel='input size', ylabel='ms per image')
    fig.savefig(save_dir / 'study.png', dpi=150)
    plt.close(fig)
    return rows


def parse_opt(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--cfg', default=None, help='model cfg (needed for darknet .weights)')
    p.add_argument('--data', default='data/shapes.data', help='.data file')
    p.add_argument('--weights', default=None, help='.pt checkpoint or darknet .weights')
    p.add_argument('--img-size', type=int, default=320)
    p.add_argument('--batch-size', type=int, default=16)
    p.add_argument('--conf-thres', type=float, default=0.001)
    p.add_argument('--iou-thres', type=float, default=0.6, help='NMS IoU threshold')
    p.add_argument('--max-det', type=int, default=300, help='detections kept per image')
    p.add_argument('--task', default='val', choices=['val', 'test', 'study'])
    p.add_argument('--save-json', action='store_true', help='write COCO predictions.json')
    p.add_argument('--device', default='', help="'cpu', '0' (CUDA 0); default: CUDA if any")
    p.add_argument('--workers', type=int, default=2)
    p.add_argument('--project', default='runs/test')
    p.add_argument('--name', default='exp')
    p.add_argument('--exist-ok', action='store_true', help='reuse project/name if it exists')
    return p.parse_args(argv)


@friendly_errors
def main(argv=None):
    opt = parse_opt(argv)
    run(**vars(opt))


if __name__ == '__main__':
    main()
