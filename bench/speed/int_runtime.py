"""Per-image time of the integer model: the Python runtime, the exported C program, and
onnxruntime's int8 Q/DQ graph of the same checkpoint, batch 1, as ratios to onnxruntime.

    python3 -m bench.speed.int_runtime --weights runs/ptq/s8/yolov3-mini_ptq_max.pt
    python3 -m bench.speed.int_runtime --weights q8.pt s8.pt --img-size 320 --runs 10 --threads 2
    python3 -m bench.speed.int_runtime --weights s8.pt --threads 1 --against /tmp/release

The C program is compiled with ``cc -O2 -std=c99`` (add --march-native for -march=native) and
timed as a process per image (start-up included: about a millisecond), single-threaded as an
MCU runs it; the Python runtime runs with --threads torch threads (its float64 convolutions);
onnxruntime with --threads intra-op threads. Runners take turns (utils/timing.py).

Feeds docs/results/fixed-point.md.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from terminaltables import AsciiTable

from bench.provenance import caption
from quantize import graphs
from quantize import int_runtime
from quantize.export_c import export_c
from quantize.export_int import integer_model
from quantize.loader import load_model
from utils.options import Parser
from utils.timing import rows_of


# the C project of a checkpoint as another checkout's code writes it (--against)
EXPORT_ELSEWHERE = ('import sys; from pathlib import Path; from quantize.export_c import export_c; '
                    'from quantize.export_int import integer_model; '
                    'from quantize.loader import load_model; '
                    'm = load_model(sys.argv[1]).float().eval(); '
                    'export_c(*integer_model(m), (int(sys.argv[2]),) * 2, Path(sys.argv[3]))')


def c_runner(folder, size, native):
    """Compile the C project in folder; a runner of one image through it."""
    exe = folder / 'yolo'
    flags = ['-O2', '-std=c99'] + (['-march=native'] if native else [])
    subprocess.run([shutil.which('cc') or 'gcc', *flags, '-o', str(exe),
                    *sorted(str(p) for p in folder.glob('*.c'))], check=True)
    raw = folder / 'image.raw'
    raw.write_bytes(np.random.default_rng(0).integers(0, 256, 3 * size * size, np.uint8))
    command = [str(exe), str(raw), str(folder / 'heads.bin')]
    return lambda: lambda: subprocess.run(command, check=True)


def exported_elsewhere(checkout, weights, size, folder):
    """The C project the other checkout writes, or None (said) where it cannot export it."""
    r = subprocess.run([sys.executable, '-c', EXPORT_ELSEWHERE, str(Path(weights).resolve()),
                        str(size), str(folder)], cwd=checkout, capture_output=True, text=True,
                       env={**os.environ, 'PYTHONPATH': str(Path(checkout).resolve())})
    if r.returncode:
        last = (r.stderr.strip().splitlines() or ['failed'])[-1]
        print(f'{checkout} cannot export {Path(weights).name}: {last}')
        return None
    return folder


def runners(weights, opt, tmp):
    model = load_model(weights).float().eval()
    manifest, arrays = integer_model(model)
    fmt = manifest['number_format']
    pixels = np.random.default_rng(0).integers(0, 256, (1, 3, opt.img_size, opt.img_size),
                                               np.uint8)
    name = Path(weights).name
    yield ({'weights': name, 'backend': f'Python runtime ({fmt})'},
           lambda: lambda: int_runtime.run(manifest, arrays, pixels))
    here = Path(tmp) / f'c_{Path(weights).stem}'  # one folder per checkpoint, not per format
    export_c(manifest, arrays, (opt.img_size, opt.img_size), here)
    cc = 'C -O2' + (' -march=native' if opt.march_native else '')
    yield ({'weights': name, 'backend': f'{cc} ({fmt}, 1 thread)'},
           c_runner(here, opt.img_size, opt.march_native))
    there = opt.against and exported_elsewhere(opt.against, weights, opt.img_size,
                                               Path(tmp) / f'old_{Path(weights).stem}')
    if there:
        yield ({'weights': name, 'backend': f'{cc} ({fmt}, 1 thread, {Path(opt.against).name})'},
               c_runner(there, opt.img_size, opt.march_native))
    if fmt != 'q16':  # Q/DQ graphs hold 8 bits
        for meta, make in graphs.onnx_runners(model, opt.img_size, [1], torch.device('cpu'),
                                              tmp, 'onnxruntime int8', opt.threads):
            yield {'weights': name, 'backend': meta['backend']}, make


def main(argv=None):
    p = Parser(prog='bench/speed/int_runtime.py', description=__doc__.splitlines()[0])
    p.add_argument('--weights', nargs='+', required=True, help='QAT or PTQ checkpoints')
    p.add_argument('--img-size', type=int, default=320)
    p.add_argument('--runs', type=int, default=10)
    p.add_argument('--warmup', type=int, default=1)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--march-native', action='store_true')
    p.add_argument('--against', default='', metavar='CHECKOUT',
                   help="also time the C project another checkout writes (e.g. a release: git "
                        "worktree add /tmp/release <commit>), the rows taking turns")
    opt = p.parse_args(argv)
    torch.set_num_threads(opt.threads)
    with tempfile.TemporaryDirectory() as tmp:
        rows = rows_of([r for w in opt.weights for r in runners(w, opt, tmp)], opt.runs,
                       opt.warmup)
    base = {r['weights']: r['median_ms'] for r in rows if r['backend'] == 'onnxruntime int8'}
    body = [[r['weights'], r['backend'], f"{r['median_ms']:.1f}", f"{r['p90_ms']:.1f}",
             f"{r['median_ms'] / base[r['weights']]:.1f}x" if r['weights'] in base else '-']
            for r in rows]
    t = AsciiTable([['weights', 'backend', 'median ms', 'p90 ms', 'vs onnxruntime int8']] + body,
                   f' {opt.img_size} px, batch 1, {opt.threads} threads ')
    print(t.table)
    print(caption())


if __name__ == '__main__':
    main()
