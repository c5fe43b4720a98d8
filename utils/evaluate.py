"""Evaluation on a dataloader: detection (mAP@0.5, mAP@0.5:0.95, P, R, F1 per class) and
segmentation (mIoU, IoU per class, pixel accuracy, frequency-weighted IoU), and speed.

Detection metrics follow COCOeval (greedy matching by confidence, 101-point interpolated AP, mean
over the classes that have ground truth), so COCO-format predictions scored by pycocotools agree.
P, R and F1 are taken at the confidence that maximizes the class-mean F1. Segmentation compares
the argmax of the head's probabilities, resized (bilinear) to the network input, with the
letterboxed mask, skipping the pixels marked 255 (letterbox padding among them).
``evaluate_model`` is what test.py, train.py (each epoch), the prune scripts, PTQ and compress.py
run; a network that only segments gets no detection keys.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from terminaltables import AsciiTable

from utils.boxes import scale_boxes, xywh2xyxy
from utils.datasets import DataError, create_dataloader, parse_data_cfg
from utils.files import atomic_write_text
from utils.metrics import DetectionStats, SegmentationStats
from utils.nms import non_max_suppression
from utils.plots import plot_confusion_matrix, plot_curves
from utils.torch_utils import autocast, time_sync


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
             collect_json=False, seg_nc=0, amp_dtype=None):
    """Run the model over the loader (under autocast to ``amp_dtype`` when given); returns
    (detection stats or None, segmentation stats or None, COCO predictions, speed in ms, images
    seen)."""
    device = torch.device(device)
    model.eval()
    stats = DetectionStats(nc) if nc else None
    seg = SegmentationStats(seg_nc) if seg_nc else None
    jdict, seen = [], 0
    timing = {'inference': 0.0, 'nms': 0.0, 'metrics': 0.0, 'segment': 0.0}
    for imgs, targets, paths, shapes, masks in dataloader:
        t0 = time_sync()
        imgs = imgs.to(device, non_blocking=True).float() / 255
        with autocast(device, amp_dtype):
            decoded, heads = model(imgs)
        t1 = time_sync()
        timing['inference'] += t1 - t0
        if stats is not None:
            dets = non_max_suppression(decoded.float(), conf_thres, iou_thres, max_det=max_det)
            t2 = time_sync()
            timing['nms'] += t2 - t1
            _score_detections(stats, dets, targets, paths, shapes, imgs.shape[2:], jdict,
                              collect_json)
            timing['metrics'] += time_sync() - t2
        if seg is not None:
            t3 = time_sync()
            pred = model.segment_classes(heads, imgs.shape[2:])
            seg.update(pred, masks.to(pred.device))
            timing['segment'] += time_sync() - t3
        seen += imgs.shape[0]
    speed = {k: 1000 * v / max(seen, 1) for k, v in timing.items() if v or k == 'inference'}
    speed['total'] = sum(speed.values())
    return stats, seg, jdict, speed, seen


def _to_original(boxes, image, shapes):
    """xyxy boxes of several images (image: each row's index in shapes) from the network input
    to their image's original pixels, clipped to it: scale_boxes with one column per image."""
    def column(values):
        return torch.tensor(values, dtype=boxes.dtype)[image][:, None]
    ratios = [r if isinstance(r, tuple) else (r, r) for _, (r, _) in shapes]
    gain = (column([r[0] for r in ratios]), column([r[1] for r in ratios]))
    pad = [column([p[k] for _, (_, p) in shapes]) for k in (0, 1)]
    size = [column([hw[k] for hw, _ in shapes]) for k in (0, 1)]
    return scale_boxes(boxes, None, size, (gain, pad))


def _score_detections(stats, dets, targets, paths, shapes, hw, jdict, collect_json):
    """Score a batch in original pixels, as COCOeval does (detections clipped to the image)."""
    counts = [len(d) for d in dets]
    det = torch.cat(dets).cpu()
    det_image = torch.arange(len(dets)).repeat_interleave(torch.tensor(counts))
    det[:, :4] = _to_original(det[:, :4], det_image, shapes)
    label_image = targets[:, 0].long()
    boxes = xywh2xyxy(targets[:, 2:6]) * torch.tensor([hw[1], hw[0], hw[1], hw[0]])
    labels = torch.cat((targets[:, 1:2], _to_original(boxes, label_image, shapes)), 1)
    stats.update(det.numpy(), labels.numpy(), det_image.numpy(), label_image.numpy())
    if collect_json:
        for d, path in zip(det.split(counts), paths):
            jdict += to_coco(d, path)


def seg_metrics(res, seg_names):
    return {'miou': res['miou'], 'pixel_acc': res['pixel_acc'], 'fw_iou': res['fw_iou'],
            'per_class_iou': {n: (None if np.isnan(v) else float(v))
                              for n, v in zip(seg_names, res['iou'])}}


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
            'by_size': res['by_size'],
            'speed_ms': {k: round(v, 3) for k, v in speed.items()}}


def print_seg_table(m):
    rows = [['Class', 'IoU']] + [['all (mIoU)', f"{m['miou']:.3f}"]]
    rows += [[n, '-' if v is None else f'{v:.3f}'] for n, v in m['per_class_iou'].items()]
    table = AsciiTable(rows)
    table.inner_heading_row_border = True
    print(table.table)
    print(f"pixel accuracy {m['pixel_acc']:.3f}, frequency-weighted IoU {m['fw_iou']:.3f}")


def print_speed(s):
    parts = ', '.join(f'{v:.1f} ms {k}' for k, v in s.items() if k != 'total')
    print(f"Speed: {parts}, {s['total']:.1f} ms total per image")


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
    if m.get('by_size'):
        print_sizes(m['by_size'])


def print_sizes(by_size):
    """mAP by COCO's object sizes (box area in the original pixels: under 32^2, to 96^2, over)."""
    rows = [['Objects', 'Targets', 'mAP@0.5', 'mAP@0.5:0.95']]
    for name, v in by_size.items():
        fmt = (lambda x: '-' if x is None else f'{x:.3f}')  # noqa: E731
        rows.append([name, v['targets'], fmt(v['map50']), fmt(v['map50_95'])])
    table = AsciiTable(rows)
    table.inner_heading_row_border = True
    print(table.table)


def evaluate_model(model, dataloader, names, conf_thres=0.001, iou_thres=0.6, max_det=300,
                   save_json=False, save_dir=None, plots=True, verbose=True, seg_names=None,
                   amp_dtype=None, extra=None):
    """Evaluate ``model`` (``model(images)`` gives (decoded detections or None, heads);
    ``model.segment_classes(heads, size)`` the class map of a segmenting network) on the
    loader, in fp32 or under autocast to ``amp_dtype``; returns the metrics dict (with ``extra``
    added: how it was scored), also written to save_dir/metrics.json when given."""
    if model.nc and model.nc != len(names):
        raise DataError(f'the dataset has {len(names)} classes but the model predicts {model.nc}')
    seg_nc = getattr(model, 'seg_nc', 0)
    if seg_nc and len(seg_names or []) != seg_nc:
        raise DataError(f'the model segments {seg_nc} classes, the dataset has '
                        f'{len(seg_names or [])} (seg_classes= in the .data)')
    device = next(model.parameters()).device if hasattr(model, 'parameters') else 'cpu'
    stats, seg, jdict, speed, n_images = evaluate(model, dataloader, model.nc, device,
                                                  conf_thres, iou_thres, max_det, save_json,
                                                  seg_nc, amp_dtype)
    metrics = {'images': n_images, 'speed_ms': {k: round(v, 3) for k, v in speed.items()},
               'inference_dtype': str(amp_dtype or torch.float32).replace('torch.', ''),
               **(extra or {})}
    if stats is not None:
        res = stats.compute()
        metrics = metrics_dict(res, names, speed, n_images) | metrics
    if seg is not None:
        metrics |= seg_metrics(seg.compute(), seg_names)
    if verbose:
        if stats is not None:
            print_table(metrics)
        if seg is not None:
            print_seg_table(metrics)
        print_speed(metrics['speed_ms'])
    if save_dir:
        save_dir = Path(save_dir)
        atomic_write_text(save_dir / 'metrics.json', json.dumps(metrics, indent=2))
        if save_json and stats is not None:
            atomic_write_text(save_dir / 'predictions.json', json.dumps(jdict))
        if plots and stats is not None:
            plot_curves(res['curves'], names, res['classes'], save_dir)
            plot_confusion_matrix(stats.confusion.matrix, names, save_dir)
    return metrics


def evaluate_on(model, data, img_size, batch_size=16, workers=None, split='valid', **kw):
    """evaluate_model on a .data file's split (valid by default) at img_size."""
    data_cfg = parse_data_cfg(data)
    if split not in data_cfg:
        raise DataError(f"{data}: no '{split}=' entry to evaluate on")
    loader, _ = create_dataloader(data_cfg[split], len(data_cfg['names']), img_size, batch_size,
                                  workers=workers, prefix=f'{split}: ',
                                  seg_nc=getattr(model, 'seg_nc', 0))
    return evaluate_model(model, loader, data_cfg['names'], seg_names=data_cfg.get('seg_names'),
                          **kw)


def headline(metrics):
    """The figures a report row carries: mAP@0.5 and mAP@0.5:0.95 for a detector, mIoU for a
    network that segments, rounded."""
    keys = [k for k in ('map50', 'map50_95', 'miou') if k in metrics]
    return {k: round(metrics[k], 4) for k in keys}
