"""One backbone for two tasks: the multi-task yolov3-mini against its detection-only and
segmentation-only twins, trained for the same epochs from the same start.

    python3 -m bench.experiments.multitask --epochs 5

Starts: the detection-only and multi-task networks from weights/yolov3-mini.pt (the multi-task
decoder fresh); the segmentation-only one from the same backbone and neck, carried over layer
by layer (its cfg is the multi-task one without the yolo heads). All train on
data/shapes-seg.data with train.py's defaults and are evaluated by test.py's evaluation on the
300 validation images; the table gives mAP@0.5, mAP@0.5:0.95, mIoU, BFLOPs, training minutes,
and the batch-1 forward latency of each network (torch, all timed in turns) over the
detection-only one's.

Feeds docs/results/multitask.md.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from terminaltables import AsciiTable

from bench.provenance import write_result
import train
from models import Darknet
from models.weights import load_checkpoint, save_checkpoint
from quantize.loader import load_model
from utils.evaluate import evaluate_on, headline
from utils.runs import increment_path
from utils.timing import rows_of, torch_runners

ROOT = Path(__file__).resolve().parents[2]
NETWORKS = {'detection': 'cfg/yolov3-mini.cfg', 'segmentation': 'cfg/yolov3-mini-seg.cfg',
            'multi-task': 'cfg/yolov3-mini-multitask.cfg'}


def carry_over(src_weights, dst_cfg, path):
    """A checkpoint of dst_cfg whose convs take the source's tensors in order, skipping source
    convs whose shapes do not fit the next destination conv (the yolo heads); the rest fresh."""
    src = load_checkpoint(src_weights)['model']
    dst = Darknet(dst_cfg)
    state = dst.state_dict()
    src_layers = sorted({int(k.split('.')[1]) for k in src})
    dst_layers = sorted({int(k.split('.')[1]) for k in state})
    k = 0
    for j in dst_layers:
        mine = {n.split('.', 2)[2]: t for n, t in state.items() if n.split('.')[1] == str(j)}
        while k < len(src_layers):
            theirs = {n.split('.', 2)[2]: t for n, t in src.items()
                      if n.split('.')[1] == str(src_layers[k])}
            k += 1
            if theirs.keys() == mine.keys() and all(theirs[n].shape == mine[n].shape
                                                    for n in mine):
                for n, t in theirs.items():
                    state[f'module_list.{j}.{n}'] = t.to(mine[n].dtype)
                break
    dst.load_state_dict(state)
    save_checkpoint({'cfg': dst.cfg_text, 'model': dst.state_dict()}, path)
    return path


def fit(name, cfg, weights, opt, out):
    t0 = time.time()
    train.run(cfg=str(ROOT / cfg), weights=str(weights), data=opt.data, epochs=opt.epochs,
              img_size=[opt.img_size], batch_size=opt.batch_size, workers=opt.workers,
              project=str(out), name=name, notest=True, seed=opt.seed)
    minutes = (time.time() - t0) / 60
    last = out / name / 'weights' / 'last.pt'
    model = load_model(last).eval()
    m = evaluate_on(model, opt.data, opt.img_size, verbose=False, plots=False)
    return {'network': name, 'cfg': cfg, 'weights': str(last), 'minutes': round(minutes, 1),
            'bflops': round(model.info(opt.img_size)['bflops'], 3), **headline(m)}


def latency(rows, img_size, runs):
    models = {r['network']: load_model(r['weights']).float().eval() for r in rows}
    runners = []
    for name, model in models.items():
        _, make = next(torch_runners(model, img_size, [1], torch.device('cpu'), False))
        runners.append(({'network': name}, make))
    timed = {r['network']: r['median_ms'] for r in rows_of(runners, runs, 3)}
    for r in rows:
        r['latency_ms'] = round(timed[r['network']], 2)
        r['latency_vs_detection'] = round(timed[r['network']] / timed['detection'], 3)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--data', default=str(ROOT / 'data' / 'shapes-seg.data'))
    p.add_argument('--weights', default=str(ROOT / 'weights' / 'yolov3-mini.pt'))
    p.add_argument('--epochs', type=int, default=5)
    p.add_argument('--img-size', type=int, default=320)
    p.add_argument('--batch-size', type=int, default=16)
    p.add_argument('--workers', type=int, default=2)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--latency-runs', type=int, default=30)
    p.add_argument('--project', default='runs/bench/multitask')
    opt = p.parse_args(argv)
    out = increment_path(opt.project, 'exp')
    seg_start = carry_over(opt.weights, ROOT / NETWORKS['segmentation'], out / 'seg_start.pt')
    starts = {'detection': opt.weights, 'segmentation': seg_start, 'multi-task': opt.weights}
    rows = [fit(name, cfg, starts[name], opt, out) for name, cfg in NETWORKS.items()]
    latency(rows, opt.img_size, opt.latency_runs)
    head = ['network', 'BFLOPs', 'mAP@0.5', 'mAP@0.5:0.95', 'mIoU', 'train min', 'b1 ms',
            'vs detection']
    body = [[r['network'], r['bflops'], r.get('map50', '-'), r.get('map50_95', '-'),
             r.get('miou', '-'), r['minutes'], r['latency_ms'], r['latency_vs_detection']]
            for r in rows]
    table = AsciiTable([head] + body, f' {opt.epochs} epochs, {opt.img_size} px ')
    table.inner_heading_row_border = True
    print(table.table)
    write_result(out / 'multitask.json', {'opt': vars(opt), 'rows': rows})
    print(f'saved {out / "multitask.json"}')
    return rows


if __name__ == '__main__':
    main()
