r"""The toolkit beside what users would pick instead: pruning against Torch-Pruning, PTQ against
onnxruntime's and NNCF's, on one dataset and one starting checkpoint. Prints tables and writes
peers.json. Feeds docs/results/peers.md and docs/results/real.md.

    python3 -m bench.peers.compare --only ptq --calib 64
    python3 -m bench.peers.compare --only prune --keep 0.5 0.3 --sr-epochs 3 --ft-epochs 3
    python3 -m bench.peers.compare --data data/shapes-hard.data \
        --weights weights/yolov3-mini-hard.pt

Pruning, per BFLOPs share kept (--keep): the toolkit's slim aimed at it (train.py -sr
--sr-target, then slim at the smallest percent that reaches it) against Torch-Pruning's
BNScalePruner and GroupNormPruner (its own regularizer in the same number of sparse epochs, then
its global cut at the ratio that reaches the same BFLOPs). Every pruned model is fine-tuned with
train.py's defaults for --ft-epochs. --train-images N trains every run on the same N images
(validation stays whole). PTQ: see bench/peers/peer_ptq.py. A peer that is not installed is left out
with a one-line note (pip install -e .[peers]).
"""
from __future__ import annotations

import time
from pathlib import Path

import torch
from terminaltables import AsciiTable

from bench.provenance import write_result
import train
from bench.peers import peer_ptq
from bench.subset import subset_data
from models.weights import load_model, save_checkpoint
from prune.cost import percent_for_bflops
from prune.methods import METHODS
from prune.runner import run_method
from quantize import graphs
from quantize.loader import inference_form
from utils.datasets import parse_data_cfg
from utils.evaluate import evaluate_on, headline
from utils.options import Parser
from utils.runs import increment_path
from utils.timing import rows_of


def timed(fn, *a, **kw):
    t0 = time.time()
    return fn(*a, **kw), time.time() - t0


def last_pt(opt, name):
    return Path(opt.project) / name / 'weights' / 'last.pt'


def finetune(cfg, weights, opt, name):
    return train.run(cfg=str(cfg), weights=str(weights), data=opt.data, epochs=opt.ft_epochs,
                     img_size=[opt.img_size], project=opt.project, name=name, exist_ok=True)


def sparse_run(opt, name, **kw):
    train.run(weights=opt.weights, data=opt.data, epochs=opt.sr_epochs, img_size=[opt.img_size],
              project=opt.project, name=name, exist_ok=True, **kw)
    return last_pt(opt, name)


def toolkit_row(opt, keep):
    tag = f'toolkit_slim_{keep}'
    last, t_sparse = timed(sparse_run, opt, f'{tag}_sparse', sr=True, s=opt.s, prune=1,
                           sr_target=keep)
    model = load_model(last).float().eval()
    pct = percent_for_bflops(model, keep, opt.img_size, METHODS['slim'].plan)
    report, t_prune = timed(run_method, 'slim', percent=pct, data=opt.data, weights=str(last),
                            img_size=opt.img_size, latency_runs=0, project=opt.project,
                            name=tag, exist_ok=True)
    tuned, t_ft = timed(finetune, report['cfg'], report['pt'], opt, f'{tag}_ft')
    p = report['pruned']
    return {'method': 'toolkit slim (aimed)', 'keep': keep, 'setting': f'--percent {pct}',
            'pruned': headline(p), 'cfg': report['cfg'],
            'weights': str(last_pt(opt, f'{tag}_ft')),
            'tuned': headline(tuned), 'seconds': {'sparse': t_sparse, 'prune': t_prune,
                                                   'finetune': t_ft}}


def torch_pruning_rows(opt, kind, names):
    from bench.peers.peer_prune import pruned_to  # needs torch_pruning

    tag = f'tp_{kind}'
    spec = {'kind': kind, 'reg': opt.s if kind == 'bnscale' else opt.tp_reg,
            'img_size': opt.img_size}
    last, t_sparse = timed(sparse_run, opt, f'{tag}_sparse', extra={'torch_pruning': spec})
    model = load_model(last).float().eval()
    for keep in opt.keep:
        (net, ratio), t_prune = timed(pruned_to, model, kind, keep, opt.img_size)
        pt = Path(opt.project) / f'{tag}_{keep}.pt'
        save_checkpoint({'cfg': net.cfg_text, 'model': net.state_dict(), 'names': names}, pt)
        pruned = headline(evaluate_on(inference_form(net.eval()), opt.data, opt.img_size,
                                      verbose=False, plots=False))
        tuned, t_ft = timed(finetune, '', pt, opt, f'{tag}_{keep}_ft')
        yield {'method': f'Torch-Pruning {kind}', 'keep': keep, 'setting': f'ratio {ratio:.3f}',
               'pruned': pruned, 'tuned': headline(tuned),
               'weights': str(last_pt(opt, f'{tag}_{keep}_ft')),
               'seconds': {'sparse': t_sparse, 'prune': t_prune, 'finetune': t_ft}}


def prune_rows(opt, notes):
    names = parse_data_cfg(opt.data)['names']
    rows = [toolkit_row(opt, keep) for keep in opt.keep]
    try:
        import torch_pruning  # noqa: F401
    except ImportError:
        notes.append('Torch-Pruning rows left out: pip install torch-pruning '
                     '(or pip install -e .[peers])')
        return rows
    for kind in ('bnscale', 'groupnorm'):
        rows += torch_pruning_rows(opt, kind, names)
    return rows


def add_cost_and_latency(rows, opt):
    """params, BFLOPs and onnxruntime batch-1 latency of each final model (interleaved)."""
    models = [load_model(r['weights']).float().eval() for r in rows]
    runners = []
    for r, m in zip(rows, models):
        info = m.info(opt.img_size)
        r |= {'params': info['params'], 'bflops': round(info['bflops'], 4)}
        path = graphs.export_onnx(m, Path(opt.project) / f"onnx_{len(runners)}",
                                  (opt.img_size,) * 2)[0]
        runners.append(peer_ptq.onnx_runner(r['method'], path, opt.img_size, opt.threads))
    for r, t in zip(rows, rows_of(runners, opt.runs, 5)):
        r['latency_ms'] = round(t['median_ms'], 2)


def prune_table(rows):
    head = ['method', 'BFLOPs kept', 'setting', 'params', 'BFLOPs', 'mAP@0.5 pruned',
            'mAP@0.5 tuned', 'mAP@0.5:0.95 tuned', 'ORT ms b1', 'wall s']
    body = [[r['method'], f"{r['keep']:.0%}" if r['keep'] else '', r['setting'],
             f"{r['params']:,}", f"{r['bflops']:.3f}",
             f"{r['pruned']['map50']:.3f}" if r.get('pruned') else '',
             f"{r['tuned']['map50']:.3f}", f"{r['tuned']['map50_95']:.3f}",
             f"{r['latency_ms']:.2f}", f"{sum(r.get('seconds', {}).values()):.0f}"] for r in rows]
    return AsciiTable([head] + body, ' pruning at equal BFLOPs ').table


def run_prune(opt, notes):
    base = {'method': 'dense (start)', 'keep': 0, 'setting': '', 'weights': opt.weights,
            'tuned': headline(evaluate_on(inference_form(load_model(opt.weights).eval()),
                                          opt.data, opt.img_size, verbose=False, plots=False))}
    rows = [base] + prune_rows(opt, notes)
    add_cost_and_latency(rows, opt)
    print(prune_table(rows))
    return rows


def run_ptq(opt, notes):
    model = load_model(opt.weights, opt.cfg or None).float().eval()
    data_cfg = parse_data_cfg(opt.data)
    graphs, missing = peer_ptq.ptq_graphs(model, data_cfg, opt, Path(opt.project))
    notes += missing
    rows = [{'method': label, 'onnx': str(path), **peer_ptq.score(path, opt.data, opt.img_size)}
            for label, path in graphs]
    runners = [peer_ptq.onnx_runner(r['method'], r['onnx'], opt.img_size, opt.threads)
               for r in rows]
    for r, t in zip(rows, rows_of(runners, opt.runs, 5)):
        r['latency_ms'] = round(t['median_ms'], 2)
    head = ['method', 'mAP@0.5', 'mAP@0.5:0.95', 'ORT ms b1']
    body = [[r['method'], f"{r['map50']:.4f}", f"{r['map50_95']:.4f}", f"{r['latency_ms']:.2f}"]
            for r in rows]
    print(AsciiTable([head] + body, f' PTQ, {opt.calib} calibration images ').table)
    return rows


def parse_opt(argv=None):
    p = Parser(prog='python3 -m bench.peers.compare', description=__doc__.splitlines()[0])
    p.add_argument('--weights', default='weights/yolov3-mini.pt', help='the float starting point')
    p.add_argument('--cfg', default='', help='the cfg of darknet --weights')
    p.add_argument('--data', default='data/shapes.data')
    p.add_argument('--img-size', type=int, default=320)
    p.add_argument('--only', nargs='*', choices=['prune', 'ptq'], default=['prune', 'ptq'])
    p.add_argument('--keep', type=float, nargs='+', default=[0.5, 0.3],
                   help='BFLOPs shares kept by the pruned models')
    p.add_argument('--s', type=float, default=0.005, help='sparsity (L1 on BN scales) for the '
                   'toolkit and Torch-Pruning BNScalePruner')
    p.add_argument('--tp-reg', type=float, default=1e-4, help="GroupNormPruner's reg")
    p.add_argument('--sr-epochs', type=int, default=3)
    p.add_argument('--ft-epochs', type=int, default=3)
    p.add_argument('--train-images', type=int, default=0, help='train on this many (0: all)')
    p.add_argument('--calib', type=int, default=64, help='PTQ calibration images')
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--runs', type=int, default=50, help='timed runs per model')
    p.add_argument('--project', default='runs/bench/peers')
    return p.parse_args(argv)


def main(argv=None):
    opt = parse_opt(argv)
    out = increment_path(opt.project, 'exp')
    opt.project = str(out)
    torch.set_num_threads(opt.threads)
    opt.data = subset_data(opt.data, opt.train_images, out)
    notes, result = [], {'weights': opt.weights, 'data': opt.data, 'img_size': opt.img_size}
    if 'ptq' in opt.only:
        result['ptq'] = run_ptq(opt, notes)
    if 'prune' in opt.only:
        result['prune'] = run_prune(opt, notes)
    for n in notes:
        print(n)
    write_result(out / 'peers.json', result | {'notes': notes})
    print(f'saved {out}/peers.json')


if __name__ == '__main__':
    main()
