"""test.py's evaluation time per image here against another checkout (a release), taking turns.

    git worktree add /tmp/release 05f0afa           # the release to compare with
    python3 -m bench.speed.test_speed --against /tmp/release --rounds 3

Each round evaluates the same weights on the same dataset (absolute paths) once in this checkout
and once in the other, each in a fresh process running that checkout's own ``load_for_inference``
and ``evaluate_on`` (what test.py runs). The time is the evaluation's wall time over the images:
the loader, inference, NMS, the metrics, their final computation; not the start-up. Prints, per
checkout, the median over the rounds and each round, and test.py's own breakdown. Each checkout
runs its own default loader workers unless --workers says otherwise.

Feeds docs/results/evaluation.md.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from utils.options import Parser

ROOT = Path(__file__).resolve().parents[2]

DRIVER = """
import json, sys, time, torch
from quantize.loader import load_for_inference
from utils.evaluate import evaluate_on
weights, data, size, batch, workers = sys.argv[1:6]
model = load_for_inference(weights, None, torch.device('cpu'))
t = time.perf_counter()
kw = {} if workers == 'default' else {'workers': int(workers)}
m = evaluate_on(model, data, int(size), int(batch), verbose=False, plots=False, **kw)
wall = time.perf_counter() - t
print(json.dumps({'ms': 1000 * wall / m['images'], 'map50': m['map50'],
                  'map50_95': m['map50_95'], 'speed_ms': m['speed_ms']}))
"""


def evaluate_in(checkout, opt):
    """One evaluation in a fresh process of ``checkout``; its figures as a dict."""
    args = [str(Path(opt.weights).resolve()), str(Path(opt.data).resolve()), str(opt.img_size),
            str(opt.batch_size), str(opt.workers)]
    out = subprocess.run([sys.executable, '-c', DRIVER, *args], cwd=checkout, text=True,
                         capture_output=True, check=True,
                         env=os.environ | {'PYTHONPATH': str(checkout)})
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    p = Parser(prog='bench/speed/test_speed.py', description=__doc__)
    p.add_argument('--against', required=True, help='another checkout of the toolkit')
    p.add_argument('--weights', default=str(ROOT / 'weights/yolov3-mini.pt'))
    p.add_argument('--data', default=str(ROOT / 'data/shapes.data'))
    p.add_argument('--img-size', type=int, default=320)
    p.add_argument('--batch-size', type=int, default=16)
    p.add_argument('--workers', default='default',
                   help="loader processes in both (default: each checkout's own default)")
    p.add_argument('--rounds', type=int, default=3)
    opt = p.parse_args(argv)
    checkouts = {'this checkout': ROOT, opt.against: Path(opt.against).resolve()}
    runs = {name: [] for name in checkouts}
    for _ in range(opt.rounds):
        for name, path in checkouts.items():
            runs[name].append(evaluate_in(path, opt))
    base = statistics.median(r['ms'] for r in runs[opt.against])
    for name, rs in runs.items():
        ms = statistics.median(r['ms'] for r in rs)
        each = ' / '.join(f"{r['ms']:.2f}" for r in rs)
        print(f"{name}: {ms:.2f} ms/img ({base / ms:.2f}x), rounds "
              f"{each}; mAP@0.5 {rs[0]['map50']:.5f} "
              f"mAP@0.5:0.95 {rs[0]['map50_95']:.5f}; test.py's own: {rs[-1]['speed_ms']}")


if __name__ == '__main__':
    main()
