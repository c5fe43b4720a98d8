"""Inference latency and throughput of checkpoints across backends.

    python3 bench/latency.py --weights weights/yolov3-mini.pt runs/prune/exp/pruned.pt
    python3 bench/latency.py --weights best.pt --device 0 --batch 1 16     # CUDA

Backends: torch eager fp32, torch channels_last, torch.compile (--compile; slow to warm up on
CPUs), onnxruntime fp32 (the ONNX export of export.py), onnxruntime int8 (the Q/DQ export of a
QAT/PTQ checkpoint, or with --int8 of a float one calibrated on --calib-images). A quantized
checkpoint's float rows run its dequantized weights. Each: --runs timed runs per batch size in
five blocks, every checkpoint and backend taking turns (each block after --warmup runs); median
and p90 latency in ms and images/s from the median. Prints a table and writes latency.json
(--out). --threads N sets torch's and onnxruntime's intra-op threads (default: torch's, one per
core): at batch 1 a pruned network's small convolutions gain less from a second thread than
the original's, so its ratio to the original depends on the thread count (README, Export).
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import statistics
import sys
import tempfile
from functools import partial
from pathlib import Path

if __package__ in (None, ''):
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import numpy as np  # noqa: E402
import torch  # noqa: E402
from terminaltables import AsciiTable  # noqa: E402

import export  # noqa: E402
from models.weights import load_model  # noqa: E402
from quantize.qdq import dequantized_model  # noqa: E402
from utils.torch_utils import select_device, time_runs  # noqa: E402


def interleaved(runners, runs, warmup, blocks=5):
    """(median, p90) ms per runner ``(label, make)``, ``make()`` giving the function to time.
    Runners take turns, a block of runs each: this machine's speed drifts by up to a third over
    minutes, and timing one backend after another put that drift into their ratios (int8 vs
    fp32 measured 1.48x that way, 1.7-1.8x interleaved)."""
    blocks = max(1, min(blocks, runs))
    per = math.ceil(runs / blocks)
    times = [[] for _ in runners]
    for _ in range(blocks):
        for t, (_, make) in zip(times, runners):
            t += time_runs(make(), per, warmup)
    return [(statistics.median(t), float(np.percentile(t, 90))) for t in times]


def torch_backends(model, compile_too):
    # Module.to() converts in place: without the copy the eager row ran channels_last weights
    yield 'torch eager fp32', model, False
    yield 'torch channels_last', copy.deepcopy(model).to(memory_format=torch.channels_last), True
    if compile_too:
        yield 'torch.compile', torch.compile(model), True


def torch_runners(model, size, batches, device, compile_too):
    for name, m, cl in torch_backends(model, compile_too):
        for b in batches:
            x = torch.rand(b, 3, size, size, device=device)
            if cl:
                x = x.contiguous(memory_format=torch.channels_last)
            yield {'backend': name, 'batch': b}, lambda m=m, x=x: partial(_no_grad, m, x)


def _no_grad(m, x):
    with torch.no_grad():
        return m(x)


def onnx_runners(model, size, batches, device, tmp, backend='onnxruntime fp32', threads=0):
    """The ONNX export of a model (an int8 Q/DQ graph for onnxruntime when the model is
    quantized), one static graph per batch size: what deployments run, and onnxruntime plans
    static shapes better (yolov3-mini: 6.4 vs 7.9 ms at batch 1). A fresh session per block,
    so that no idle session's threads compete with the one being timed."""
    import onnxruntime as ort  # noqa: PLC0415

    providers = ['CPUExecutionProvider']
    if device.type == 'cuda':  # a CPU-only onnxruntime runs there on the CPU: say so in the row
        if 'CUDAExecutionProvider' in ort.get_available_providers():
            providers.insert(0, 'CUDAExecutionProvider')
        else:
            backend += ' (CPU)'
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads  # 0: onnxruntime's default, one per core
    folder = Path(tempfile.mkdtemp(dir=tmp))  # every graph lives until the timing ends
    cpu_model = copy.deepcopy(model).float().cpu()  # .cpu() would move the torch rows' model
    for b in batches:
        path = export.export_onnx(cpu_model, folder / f'graph_b{b}', (size, size), batch=b,
                                  qdq='onnxruntime')[0]
        x = np.random.rand(b, 3, size, size).astype(np.float32)

        def make(path=path, x=x):
            sess = ort.InferenceSession(path, options, providers=providers)
            return lambda: sess.run(None, {'images': x})
        yield {'backend': backend, 'batch': b}, make


def rows_of(runners, runs, warmup):
    runners = list(runners)
    return [meta | {'median_ms': med, 'p90_ms': p90}
            for (meta, _), (med, p90) in zip(runners, interleaved(runners, runs, warmup))]


def int8_version(model, opt, device):
    """The model's int8 form: its own (QAT/PTQ checkpoint) or calibrated on --calib-images."""
    if export.is_quantized(model):
        return model
    if not opt.int8:
        return None
    return export.int8_model(model, opt.calib_images, opt.calib, 'percentile', opt.img_size,
                             device)


def runners_of(weights, opt, device, tmp):
    """Every (row, make) of one checkpoint: torch backends, onnxruntime fp32 and int8."""
    model = load_model(weights).float().to(device).eval()
    int8 = int8_version(model, opt, device)
    if export.is_quantized(model):
        model = dequantized_model(model)  # the same weights, run in float
    runners = list(torch_runners(model, opt.img_size, opt.batch, device, opt.compile))
    runners += onnx_runners(model, opt.img_size, opt.batch, device, tmp, threads=opt.threads)
    if int8 is not None:
        runners += onnx_runners(int8, opt.img_size, opt.batch, device, tmp, 'onnxruntime int8',
                                opt.threads)
    info = model.info(opt.img_size)
    for meta, _ in runners:
        meta.update(weights=str(weights), params=info['params'], bflops=info['bflops'])
    return runners


def labels(paths):
    """Each path's file name, or as many trailing parts as tell it from the others' (runs'
    checkpoints are all last.pt)."""
    parts = {p: Path(p).parts for p in dict.fromkeys(paths)}
    for n in range(1, max(map(len, parts.values()), default=0) + 1):
        short = {p: '/'.join(q[-n:]) for p, q in parts.items()}
        if len(set(short.values())) == len(short):
            return short
    return {p: p for p in parts}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--weights', nargs='+', default=['weights/yolov3-mini.pt'])
    p.add_argument('--img-size', type=int, default=320)
    p.add_argument('--batch', type=int, nargs='+', default=[1, 8])
    p.add_argument('--runs', type=int, default=30)
    p.add_argument('--warmup', type=int, default=5)
    p.add_argument('--device', default='cpu')
    p.add_argument('--compile', action='store_true', help='also time torch.compile')
    p.add_argument('--int8', action='store_true',
                   help='also time an int8 version of float checkpoints (calibrated on '
                        '--calib-images); quantized checkpoints always get their own')
    p.add_argument('--calib-images', default='data/shapes/train.txt')
    p.add_argument('--calib', type=int, default=32)
    p.add_argument('--threads', type=int, default=0,
                   help="intra-op threads of torch and onnxruntime (0: torch's current count)")
    p.add_argument('--out', default='runs/bench/latency.json')
    opt = p.parse_args(argv)
    device = select_device(opt.device)
    if opt.threads < 0:
        raise SystemExit(f'--threads must be 0 (default) or more, got {opt.threads}')
    opt.threads = opt.threads or torch.get_num_threads()
    torch.set_num_threads(opt.threads)
    with tempfile.TemporaryDirectory() as tmp:  # all checkpoints' runners take turns
        runners = [r for w in opt.weights for r in runners_of(w, opt, device, tmp)]
        results = rows_of(runners, opt.runs, opt.warmup)
    for r in results:
        r['img_s'] = r['batch'] * 1000 / r['median_ms']
    head = ['weights', 'BFLOPs', 'backend', 'batch', 'median ms', 'p90 ms', 'img/s']
    names = labels([r['weights'] for r in results])
    body = [[names[r['weights']], f"{r['bflops']:.3f}", r['backend'], r['batch'],
             f"{r['median_ms']:.2f}", f"{r['p90_ms']:.2f}", f"{r['img_s']:.1f}"] for r in results]
    t = AsciiTable([head] + body, f' latency, {device}, {torch.get_num_threads()} threads ')
    t.inner_heading_row_border = True
    print(t.table)
    Path(opt.out).parent.mkdir(parents=True, exist_ok=True)
    Path(opt.out).write_text(json.dumps({'device': str(device), 'img_size': opt.img_size,
                                         'threads': opt.threads,
                                         'results': results}, indent=2))
    print(f'saved {opt.out}')


if __name__ == '__main__':
    main()
