r"""Does a distillation term point anywhere the labels do not? On augmented training batches, the
gradient of each KDstr's terms (as train.py weighs them) and of the detection loss, with respect
to the student's weights, compared by cosine similarity; beside it, the cosine between the
detection gradients of two different batches (how much one batch of labels agrees with another).

    python3 -m bench.experiments.kd_alignment \
        --student runs/bench/prune/exp12/slim_0.01_70_BFLOPs/*.pt

A KD gradient nearly parallel to the detection gradient only rescales the label loss; one
nearly orthogonal to it (and to other batches' label gradients) pulls the student elsewhere.
BN layers run in eval mode, so both gradients see the same network. Prints a table, writes JSON.

Feeds docs/results/distillation.md.
"""
from __future__ import annotations

import argparse
from pathlib import Path


import torch
from terminaltables import AsciiTable

from bench.provenance import write_result
from distill.hook import DistillHook
from models.weights import load_model
from utils.hyp import load_hyp
from utils.datasets import create_dataloader, parse_data_cfg
from utils.loss import YoloLoss, scaled_gains


def flat_grad(loss, params):
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return torch.cat([(g if g is not None else torch.zeros_like(p)).flatten()
                      for g, p in zip(grads, params)])


def cosine(a, b):  # float64: over a million terms float32 rounding reaches 1e-4
    return torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=0).item()


def alignment(student, teacher, batches, strategies, hyp, temperature):
    """Per strategy: mean cosine(KD grad, detection grad) and mean |KD grad| / |detection grad|
    over the batches; 'labels': cosine between consecutive batches' detection gradients."""
    params = list(student.requires_grad_(True).parameters())
    criterion = YoloLoss(student, hyp)
    hooks = {s: DistillHook(s, teacher, temperature=temperature) for s in strategies}
    for h in hooks.values():
        h.hyp = hyp
        h.on_model(student)
    sums = {s: [0.0, 0.0] for s in strategies} | {'labels': [0.0, 0.0]}
    previous = None
    for imgs, targets in batches:
        preds = student(imgs)[1]
        task = flat_grad(criterion(preds, targets, imgs.shape[2:])[0], params)
        for s, h in hooks.items():
            kd = flat_grad(sum(h.extra_loss(student, imgs, preds, targets).values())
                           * imgs.shape[0], params)  # train.py scales them by the batch too
            sums[s][0] += cosine(kd, task)
            sums[s][1] += (kd.norm() / task.norm()).item()
        if previous is not None:
            sums['labels'][0] += cosine(task, previous)
        previous = task
    n = len(batches)
    out = {s: {'cos': round(c / n, 4), 'norm_ratio': round(r / n, 4)}
           for s, (c, r) in sums.items() if s != 'labels'}
    out['labels'] = {'cos': round(sums['labels'][0] / max(n - 1, 1), 4), 'norm_ratio': None}
    return out


def training_batches(data, img_size, n, seed=0):
    """n augmented training batches of 16, drawn as train.py draws them."""
    torch.manual_seed(seed)
    loader, _ = create_dataloader(data['train'], len(data['names']), img_size, 16,
                                  augment=True, hyp=load_hyp({}), workers=0, shuffle=True,
                                  seed=seed)
    batches = []
    for imgs, targets, *_ in loader:
        batches.append((imgs.float() / 255, targets))
        if len(batches) == n:
            return batches
    return batches


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--teacher', default='weights/yolov3-mini.pt')
    p.add_argument('--student', nargs='+', required=True)
    p.add_argument('--data', default='data/shapes.data')
    p.add_argument('--img-size', type=int, default=320)
    p.add_argument('--batches', type=int, default=8)
    p.add_argument('--strategies', type=int, nargs='+', default=[1, 2, 3, 4, 5])
    p.add_argument('--kd-T', type=float, default=3.0)
    p.add_argument('--out', default='runs/bench/kd_alignment.json')
    opt = p.parse_args(argv)
    data = parse_data_cfg(opt.data)
    batches = training_batches(data, opt.img_size, opt.batches)
    teacher = load_model(opt.teacher).float().eval()
    rows, result = [], {}
    for path in opt.student:
        student = load_model(path).float().eval()
        hyp = scaled_gains(load_hyp({}), len(student.yolo_layers), student.nc, opt.img_size)
        result[path] = r = alignment(student, teacher, batches, opt.strategies, hyp, opt.kd_T)
        rows += [[Path(path).name, 'labels, another batch', f"{r['labels']['cos']:.3f}", '']]
        rows += [[Path(path).name, f'KDstr {s}', f"{r[s]['cos']:.3f}",
                  f"{r[s]['norm_ratio']:.3f}"] for s in opt.strategies]
    t = AsciiTable([['student', 'gradient', 'cosine with the detection gradient',
                     '|g| / |g detection|']] + rows)
    t.inner_heading_row_border = True
    print(t.table)
    write_result(opt.out, {'teacher': opt.teacher, 'batches': opt.batches, 'kd_T': opt.kd_T,
                           'students': result})
    print(f'saved {opt.out}')


if __name__ == '__main__':
    main()
