"""Evaluation of a detector on a dataloader: mAP@0.5, mAP@0.5:0.95, P, R, F1 per class, speed.

Metrics follow COCOeval (greedy matching by confidence, 101-point interpolated AP, mean over the
classes that have ground truth), so COCO-format predictions scored by pycocotools agree. P, R and
F1 are taken at the confidence that maximizes the class-mean F1. ``evaluate_model`` is what
test.py, train.py (each epoch), the prune scripts, PTQ and compress.py run.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from terminaltables import AsciiTable

from utils.boxes import scale_boxes, xywh2xyxy
from utils.datasets import DataError, create_dataloader, parse_data_cfg
from utils.files import atomic_write_text
from utils.metrics import DetectionStats
from utils.nms import non_max_suppression
from utils.plots import plot_confusion_matrix, plot_curves
from utils.torch_utils import time_sync


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


def evaluate_model(model, dataloader, names, conf_thres=0.001, iou_thres=0.6, max_det=300,
                   save_json=False, save_dir=None, plots=True, verbose=True):
    """Evaluate ``model`` (anything whose ``model(images)[0]`` is the decoded output) on the
    loader; returns the metrics dict, also written to save_dir/metrics.json when given."""
    if model.nc != len(names):
        raise DataError(f'the dataset has {len(names)} classes but the model predicts {model.nc}')
    device = next(model.parameters()).device if hasattr(model, 'parameters') else 'cpu'
    stats, jdict, speed, n_images = evaluate(model, dataloader, len(names), device, conf_thres,
                                             iou_thres, max_det, collect_json=save_json)
    res = stats.compute()
    metrics = metrics_dict(res, names, speed, n_images)
    if verbose:
        print_table(metrics)
    if save_dir:
        save_dir = Path(save_dir)
        atomic_write_text(save_dir / 'metrics.json', json.dumps(metrics, indent=2))
        if save_json:
            atomic_write_text(save_dir / 'predictions.json', json.dumps(jdict))
        if plots:
            plot_curves(res['curves'], names, res['classes'], save_dir)
            plot_confusion_matrix(stats.confusion.matrix, names, save_dir)
    return metrics


def evaluate_on(model, data, img_size, batch_size=16, workers=2, split='valid', **kw):
    """evaluate_model on a .data file's split (valid by default) at img_size."""
    data_cfg = parse_data_cfg(data)
    if split not in data_cfg:
        raise DataError(f"{data}: no '{split}=' entry to evaluate on")
    loader, _ = create_dataloader(data_cfg[split], len(data_cfg['names']), img_size, batch_size,
                                  workers=workers, prefix=f'{split}: ')
    return evaluate_model(model, loader, data_cfg['names'], **kw)
