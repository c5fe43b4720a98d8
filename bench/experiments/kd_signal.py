r"""What can a teacher teach beyond the labels? At the cells the detection loss trains as positives
(the validation set, no augmentation), compare the teacher's and a student's predictions with the
ground truth: class accuracy, the probability of the true class (softmax at T = 1 and at the
distillation temperature), objectness at positive and negative cells, and box IoU.

    python3 bench/experiments/kd_signal.py --teacher weights/yolov3-mini.pt \
        --student runs/bench/prune/exp6/slim_0.69_70_BFLOPs_ft/weights/best.pt

If the teacher's outputs are the labels again (true class near 1, little mass on the others even
at T = 3) and the student's shortfall is in what the labels already teach, output distillation
has nothing to add. Prints a table and writes kd_signal.json beside the student (or teacher).

Feeds docs/results/distillation.md.
"""
from __future__ import annotations

import argparse
from pathlib import Path


import torch
from terminaltables import AsciiTable

from bench.provenance import write_result
from distill.common import logits
from models.weights import load_model
from utils.boxes import bbox_iou
from utils.datasets import create_dataloader, parse_data_cfg
from utils.loss import YoloLoss

KEYS = ('cls_acc', 'p_true_T1', 'p_true_T', 'obj_pos', 'obj_neg', 'iou')


@torch.no_grad()
def signal(model, loader, temperature):
    """Means over the validation set of KEYS at positive cells (obj_neg: at all others)."""
    loss = YoloLoss(model, {'anchor_t': 4.0})
    sums, counts = dict.fromkeys(KEYS, 0.0), dict.fromkeys(KEYS, 0)
    for imgs, targets, *_ in loader:
        imgs = imgs.float() / 255
        _, raw = model(imgs)
        for head, p in zip(loss.heads, raw):
            (b, a, gj, gi), tbox, anchors, tcls = loss.assign(head, p, targets, imgs.shape[2:])
            x = logits(p, head)
            neg = torch.ones(x.shape[:4], dtype=torch.bool)
            neg[b, a, gj, gi] = False
            _add(sums, counts, 'obj_neg', x[..., 4][neg].sigmoid())
            if not len(b):
                continue
            ps = x[b, a, gj, gi]
            _add(sums, counts, 'obj_pos', ps[:, 4].sigmoid())
            _add(sums, counts, 'iou', bbox_iou(loss._decode_cells(p[b, a, gj, gi].float(),
                                                                  anchors, head), tbox, 'iou'))
            cls = ps[:, 5:]
            rows = torch.arange(len(b))
            _add(sums, counts, 'cls_acc', (cls.argmax(1) == tcls).float())
            _add(sums, counts, 'p_true_T1', cls.softmax(1)[rows, tcls])
            _add(sums, counts, 'p_true_T', (cls / temperature).softmax(1)[rows, tcls])
    return {k: round(sums[k] / max(counts[k], 1), 4) for k in KEYS}


def _add(sums, counts, key, values):
    sums[key] += values.float().sum().item()
    counts[key] += values.numel()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--teacher', default='weights/yolov3-mini.pt')
    p.add_argument('--student', nargs='*', default=[])
    p.add_argument('--data', default='data/shapes.data')
    p.add_argument('--img-size', type=int, default=320)
    p.add_argument('--kd-T', type=float, default=3.0, help="train.py's --kd-T")
    opt = p.parse_args(argv)
    data = parse_data_cfg(opt.data)
    loader, _ = create_dataloader(data['valid'], len(data['names']), opt.img_size, 16,
                                  workers=2, prefix='valid: ')
    rows = {}
    for name, weights in [('teacher', opt.teacher)] + [(s, s) for s in opt.student]:
        rows[name] = signal(load_model(weights).float().eval(), loader, opt.kd_T)
    head = ['model', 'class acc', 'p(true) T=1', f'p(true) T={opt.kd_T:g}', 'obj at positives',
            'obj elsewhere', 'box IoU']
    t = AsciiTable([head] + [[Path(n).parent.parent.name if n != 'teacher' else n] +
                             [f'{r[k]:.4f}' for k in KEYS] for n, r in rows.items()])
    t.inner_heading_row_border = True
    print(t.table)
    out = Path(opt.student[0] if opt.student else opt.teacher).parent / 'kd_signal.json'
    write_result(out, {'kd_T': opt.kd_T, 'rows': rows})
    print(f'saved {out}')


if __name__ == '__main__':
    main()
