r"""Accuracy vs cost of every prune method on the built-in dataset: mAP right after pruning and
after a short fine-tune, against params and BFLOPs. Prints a table, writes JSON and a plot.

    python3 train.py --weights weights/yolov3-mini.pt -sr --s 0.005 --prune 1 --epochs 12 \
        --name sr-mini                                       # sparse training (or leave --sparse
    python3 -m bench.experiments.prune_tradeoff \
        --sparse runs/train/sr-mini/weights/last.pt   # out: it runs)

Each setting is pruned from the same sparse checkpoint and fine-tuned for ``--ft-epochs`` with
train.py's defaults (distilled from ``--weights`` with ``--KDstr N``). ``slim@70%`` is slim
pruning at the smallest percent (0.01 steps) that removes at least ``--target`` of the BFLOPs.

Feeds docs/results/pruning.md, docs/results/distillation.md.
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path


import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt
from terminaltables import AsciiTable

from bench.provenance import write_result
from quantize.loader import load_for_inference
from utils.evaluate import evaluate_on
from utils.torch_utils import select_device
import train
from models.weights import load_model
from prune.cost import percent_for_bflops
from prune.masks import RANKS
from prune.methods import METHODS
from prune.runner import run_method
from prune.plan import PruneError
from utils.plots import save_figure
from utils.runs import increment_path

SETTINGS = [  # (label, method, arguments)
    ('normal 0.5', 'normal', {'percent': 0.5}),
    ('regular 0.5', 'regular', {'percent': 0.5}),
    ('shortcut 0.5', 'shortcut', {'percent': 0.5}),
    ('slim 0.5', 'slim', {'percent': 0.5}),
    ('layer 2', 'layer', {'shortcuts': 2}),
    ('layer 4', 'layer', {'shortcuts': 4}),
    ('layer_channel 0.5+2', 'layer_channel', {'percent': 0.5, 'shortcuts': 2}),
]


def sparse_train(opt):
    train.run(weights=opt.weights, data=opt.data, sr=True, s=opt.s, prune=1,
              sr_schedule=opt.sr_schedule, sr_flops=opt.sr_flops, epochs=opt.sr_epochs,
              project=opt.project, name='sparse', exist_ok=True)
    return Path(opt.project) / 'sparse' / 'weights' / 'last.pt'


def evaluate(weights, data, img_size, out, name):
    m = evaluate_on(load_for_inference(weights, None, select_device('')), data, img_size,
                    verbose=False, plots=False, save_dir=out / name)
    return {'map50': round(m['map50'], 4), 'map50_95': round(m['map50_95'], 4)}


def one_setting(label, method, args, opt, out):
    name = re.sub(r'[^\w.]+', '_', label).strip('_')
    report = run_method(method, **args, data=opt.data, weights=str(opt.sparse),
                        img_size=opt.img_size, latency_runs=opt.latency_runs, project=str(out),
                        name=name, exist_ok=True)
    teacher = {'t_weights': opt.weights, 'KDstr': opt.KDstr} if opt.KDstr else {}
    tuned = train.run(cfg=report['cfg'], weights=report['pt'], data=opt.data,
                      epochs=opt.ft_epochs, img_size=[opt.img_size], project=str(out),
                      name=f'{name}_ft', exist_ok=True, **teacher)
    o, p = report['original'], report['pruned']
    return {'setting': label, 'params': p['params'], 'bflops': p['bflops'],
            'params_ratio': round(p['params'] / o['params'], 4),
            'bflops_ratio': round(p['bflops'] / o['bflops'], 4),
            'latency_ms': p['latency_ms'], 'latency_ms_sparse': o['latency_ms'],
            'map50_pruned': p['map50'], 'map50_95_pruned': p['map50_95'],
            'map50_ft': round(tuned['map50'], 4), 'map50_95_ft': round(tuned['map50_95'], 4),
            'cfg': report['cfg']}


def table(baseline, sparse, rows, ft_epochs, dense_name):
    head = ['setting', 'params', 'BFLOPs', 'BFLOPs %', 'mAP@0.5 pruned',
            f'mAP@0.5 +{ft_epochs}ep', f'mAP@0.5:0.95 +{ft_epochs}ep', 'CPU ms']
    body = [[f'dense ({dense_name})', '', '', '100%', '', f"{baseline['map50']:.3f}",
             f"{baseline['map50_95']:.3f}", ''],
            ['sparse-trained', '', '', '100%', '', f"{sparse['map50']:.3f}",
             f"{sparse['map50_95']:.3f}", '']]
    for r in rows:
        body.append([r['setting'], f"{r['params']:,}", f"{r['bflops']:.3f}",
                     f"{r['bflops_ratio']:.0%}", f"{r['map50_pruned']:.3f}", f"{r['map50_ft']:.3f}",
                     f"{r['map50_95_ft']:.3f}", f"{r['latency_ms']:.1f}"])
    t = AsciiTable([head] + body)
    t.inner_heading_row_border = True
    return t.table


def plot(baseline, rows, path):
    fig, ax = plt.subplots(figsize=(7, 5), tight_layout=True)
    for r in rows:
        ax.plot([r['bflops']] * 2, [r['map50_pruned'], r['map50_ft']], color='lightgray', zorder=1)
        ax.scatter(r['bflops'], r['map50_pruned'], marker='x', color='gray', zorder=2)
        ax.scatter(r['bflops'], r['map50_ft'], zorder=3)
        ax.annotate(r['setting'], (r['bflops'], r['map50_ft']), fontsize=7)
    ax.axhline(baseline['map50'], ls='--', color='k', lw=1, label='dense baseline')
    ax.set_xlabel('BFLOPs')
    ax.set_ylabel('mAP@0.5 (x: right after pruning, dot: after fine-tune)')
    ax.legend()
    save_figure(fig, path, 120)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--weights', default='weights/yolov3-mini.pt', help='dense starting point')
    p.add_argument('--data', default='data/shapes.data')
    p.add_argument('--sparse', default='', help='sparse-trained checkpoint (else: train one)')
    p.add_argument('--s', type=float, default=0.005)
    p.add_argument('--sr-epochs', type=int, default=12)
    p.add_argument('--sr-schedule', default='constant', choices=['constant', 'decay'])
    p.add_argument('--sr-flops', action='store_true', help="train.py's --sr-flops")
    p.add_argument('--ft-epochs', type=int, default=3)
    p.add_argument('--KDstr', type=int, default=0, choices=[0, 1, 2, 3, 4, 5],
                   help='fine-tune distilled from --weights with this strategy (0: no teacher)')
    p.add_argument('--target', type=float, default=0.7, help='BFLOPs share slim@ removes')
    p.add_argument('--img-size', type=int, default=320)
    p.add_argument('--latency-runs', type=int, default=20)
    p.add_argument('--rank', default='global', choices=RANKS, help="the channel scripts' --rank")
    p.add_argument('--only', nargs='*', default=None,
                   help="run the settings starting so ('target': the slim row at --target)")
    p.add_argument('--project', default='runs/bench/prune')
    opt = p.parse_args(argv)
    out = increment_path(opt.project, 'exp')
    opt.project = str(out)
    opt.sparse = opt.sparse or sparse_train(opt)
    pct = percent_for_bflops(load_model(opt.sparse), 1 - opt.target, opt.img_size,
                             lambda m, p: METHODS['slim'].plan(m, p, rank=opt.rank))
    target = (f'slim {pct} (-{opt.target:.0%} BFLOPs)', 'slim', {'percent': pct})
    settings = SETTINGS + [target]
    if opt.only is not None:
        settings = [s for s in settings if any(s[0].startswith(o) for o in opt.only)
                    or (s is target and 'target' in opt.only)]
    settings = [(label, method, args | ({'rank': opt.rank} if 'percent' in args else {}))
                for label, method, args in settings]
    baseline = evaluate(opt.weights, opt.data, opt.img_size, out, 'eval_dense')
    sparse = evaluate(opt.sparse, opt.data, opt.img_size, out, 'eval_sparse')
    rows = []
    for s in settings:
        try:
            rows.append(one_setting(*s, opt, out))
        except PruneError as e:
            print(f'{s[0]}: {e}')
    print(table(baseline, sparse, rows, opt.ft_epochs, Path(opt.weights).name))
    result = {'baseline': baseline, 'sparse': sparse, 'sparse_weights': str(opt.sparse),
              'slim_target_percent': pct, 'ft_epochs': opt.ft_epochs, 'KDstr': opt.KDstr,
              'rank': opt.rank, 'rows': rows}
    write_result(out / 'prune_tradeoff.json', result)
    plot(baseline, rows, out / 'prune_tradeoff.png')
    print(f'saved {out}/prune_tradeoff.json and .png')


if __name__ == '__main__':
    main()
