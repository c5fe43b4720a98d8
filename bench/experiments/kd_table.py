r"""Does distillation help a pruned student recover? The same fine-tune without KD and with each
--KDstr, from the same pruned checkpoint, against the teacher it was pruned from.

    python3 -m bench.experiments.kd_table --cfg runs/prune/exp/yolov3-mini_slim_0.83.cfg \
        --weights runs/prune/exp/yolov3-mini_slim_0.83.pt --teacher weights/yolov3-mini.pt
    python3 -m bench.experiments.kd_table --cfg S.cfg --weights S.pt \
        --teacher weights/yolov3-mini-hard.pt \
        --data data/shapes-hard.data --epochs 10 --seeds 0 1 2 --train-images 1000

Prints a table (mAP and the share of the student-teacher gap each strategy closes; with
--seeds, the mean and each seed's mAP, so differences can be set against the spread), writes
kd_table.json into the run folder. Each finished fine-tune leaves its figures in its own folder
(result.json), so the same command with --name of a stopped table redoes only the missing ones.

Feeds docs/results/distillation.md.
"""
from __future__ import annotations

import json
import time

import numpy as np
from terminaltables import AsciiTable

from bench.provenance import write_result
import train
from bench.subset import subset_data
from quantize.loader import load_for_inference
from utils.evaluate import evaluate_on
from utils.files import atomic_write_text
from utils.options import Parser
from utils.runs import increment_path
from utils.torch_utils import select_device

NAMES = {0: 'no KD', 1: 'KDstr 1 outputs', 2: 'KDstr 2 teacher-bounded',
         3: 'KDstr 3 imitation', 4: 'KDstr 4 +features', 5: 'KDstr 5 +fine-grained mask',
         6: 'KDstr 6 objectness-scaled'}


def fine_tune_once(opt, out, strategy, seed):
    """One fine-tune's mAP and wall time; read back when an earlier run of the table finished it."""
    name = f'kd{strategy}_s{seed}'
    done = out / name / 'result.json'
    if done.exists():
        return json.loads(done.read_text())
    kd = {'t_weights': opt.teacher, 'KDstr': strategy, 'kd_weight': opt.kd_weight} \
        if strategy else {}
    hyp = {'hyp': opt.hyp} if opt.hyp else {}
    t = time.perf_counter()
    m = train.run(cfg=opt.cfg, weights=opt.weights, data=opt.data, epochs=opt.epochs,
                  img_size=[opt.img_size], project=str(out), name=name, exist_ok=True,
                  notest=True, seed=seed, **kd, **hyp)
    result = {'map50': m['map50'], 'map50_95': m['map50_95'],
              'seconds': round(time.perf_counter() - t, 1)}
    atomic_write_text(done, json.dumps(result))
    return result


def fine_tune(opt, out, strategy):
    """One row: the mean over --seeds (and each seed's mAP, to show the spread)."""
    runs = [fine_tune_once(opt, out, strategy, seed) for seed in opt.seeds]
    row = {'strategy': strategy, 'name': NAMES[strategy]}
    for key in ('map50', 'map50_95'):
        values = [m[key] for m in runs]
        row[key] = round(float(np.mean(values)), 4)
        row[f'{key}_seeds'] = [round(v, 4) for v in values]
    row['seconds'] = round(sum(m['seconds'] for m in runs), 1)
    return row


def table(teacher, rows):
    base = rows[0]['map50']
    gap = teacher['map50'] - base
    body = [['teacher', f"{teacher['map50']:.4f}", '', f"{teacher['map50_95']:.4f}", '']]
    for r in rows:
        r['gap_closed'] = round((r['map50'] - base) / gap, 3) if gap > 0 else None
        closed = '' if r['strategy'] == 0 or r['gap_closed'] is None else f"{r['gap_closed']:.0%}"
        seeds = ' '.join(f'{v:.4f}' for v in r['map50_seeds']) if len(r['map50_seeds']) > 1 \
            else ''
        body.append([r['name'], f"{r['map50']:.4f}", seeds, f"{r['map50_95']:.4f}", closed])
    t = AsciiTable([['fine-tune', 'mAP@0.5', 'per seed', 'mAP@0.5:0.95', 'gap closed']] + body)
    t.inner_heading_row_border = True
    return t.table


def main(argv=None):
    p = Parser(prog='bench/experiments/kd_table.py', description=__doc__.splitlines()[0])
    p.add_argument('--cfg', required=True, help='the pruned student cfg')
    p.add_argument('--weights', required=True, help='the pruned student weights')
    p.add_argument('--teacher', default='weights/yolov3-mini.pt')
    p.add_argument('--data', default='data/shapes.data')
    p.add_argument('--epochs', type=int, default=3)
    p.add_argument('--img-size', type=int, default=320)
    p.add_argument('--kd-weight', type=float, default=1.0)
    p.add_argument('--strategies', type=int, nargs='*', default=[1, 2, 3, 4, 5, 6],
                   help='KDstr values to compare with the fine-tune without KD')
    p.add_argument('--seeds', type=int, nargs='+', default=[0],
                   help='repeat each fine-tune with these seeds; rows show the mean and each')
    p.add_argument('--train-images', type=int, default=0,
                   help='fine-tune every row on the same N training images (0: all)')
    p.add_argument('--hyp', default='', help="train.py's --hyp for every fine-tune")
    p.add_argument('--project', default='runs/bench/kd')
    p.add_argument('--name', default='',
                   help='run folder under --project; an existing one resumes (default: a new exp)')
    opt = p.parse_args(argv)
    out = increment_path(opt.project, opt.name or 'exp', exist_ok=bool(opt.name))
    opt.data = subset_data(opt.data, opt.train_images, out)
    m = evaluate_on(load_for_inference(opt.teacher, None, select_device('')), opt.data,
                    opt.img_size, verbose=False, plots=False)
    teacher = {'map50': round(m['map50'], 4), 'map50_95': round(m['map50_95'], 4)}
    rows = [fine_tune(opt, out, k) for k in [0] + [k for k in opt.strategies if k]]
    print(table(teacher, rows))
    result = {'teacher': teacher, 'student': opt.weights, 'epochs': opt.epochs,
              'seeds': opt.seeds, 'train_images': opt.train_images, 'rows': rows}
    write_result(out / 'kd_table.json', result)
    print(f'saved {out}/kd_table.json')


if __name__ == '__main__':
    main()
