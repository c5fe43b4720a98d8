"""Inference latency and throughput of checkpoints across backends.

    python3 bench/speed/latency.py --weights weights/yolov3-mini.pt runs/prune/exp/pruned.pt
    python3 bench/speed/latency.py --weights best.pt --device 0 --batch 1 16     # CUDA

Backends: torch eager fp32, torch channels_last, torch.compile (--compile; slow to warm up on
CPUs), onnxruntime fp32 (the ONNX export of export.py), onnxruntime int8 (the Q/DQ export of a
QAT/PTQ checkpoint, or with --int8 of a float one calibrated on --calib-images), and with
--openvino OpenVINO fp32 and int8 (export.py --format openvino; each int8 graph in the flavour
export.py's int8 check picks for that runtime here, named in the row). A quantized checkpoint's
float rows run its dequantized weights; --ncnn adds ncnn fp32 at batch 1. Each: --runs timed
runs per batch size in five blocks, every checkpoint and backend taking turns (each block after
--warmup runs); median and p90 latency in ms and images/s from the median. Prints a table and
writes latency.json (--out). --threads N sets torch's, onnxruntime's, OpenVINO's and ncnn's
threads (default: torch's, one per core): at batch 1 a pruned network's small convolutions gain
less from a second thread than the original's, so its ratio to the original depends on the
thread count (README, Export).

Feeds docs/results/latency.md, docs/results/real.md, docs/results/pruning.md,
docs/results/quantization.md and docs/results/edge.md.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from terminaltables import AsciiTable

from bench.provenance import write_result
import export
from models.darknet import is_quantized
from quantize import graphs
from quantize.deploy_check import check_batches, checked_qdq
from quantize.loader import load_model
from quantize.qdq import dequantized_model
from utils.options import Parser
from utils.timing import rows_of, torch_runners
from utils.torch_utils import select_device


def int8_version(model, opt, device):
    """The model's int8 form: its own (QAT/PTQ checkpoint) or calibrated on --calib-images."""
    if is_quantized(model):
        return model
    if not opt.int8:
        return None
    return export.int8_model(model, opt.calib_images, opt.calib, 'percentile', opt.img_size,
                             device)


def checked_flavour(int8, fmt, weights, opt):
    """The Q/DQ flavour export.py would write for this runtime here (its int8 check), so that
    the timed graph is the one deployed; --no-check: the fused onnxruntime / OpenVINO one."""
    if not opt.check:
        return None
    size = (opt.img_size, opt.img_size)
    batches = check_batches(weights, opt.calib_images if opt.int8 else '', size, int8.nc)
    return checked_qdq(int8.cpu(), fmt, size, None, batches)[0]


def flavoured(runners, qdq):
    """The rows, each saying which Q/DQ flavour it times."""
    out = list(runners)
    for meta, _ in out:
        meta['qdq'] = qdq or 'as written'
    return out


def runners_of(weights, opt, device, tmp):
    """Every (row, make) of one checkpoint: torch backends, onnxruntime fp32 and int8, OpenVINO
    fp32 and int8 with --openvino."""
    model = load_model(weights).float().to(device).eval()
    int8 = int8_version(model, opt, device)
    if is_quantized(model):
        model = dequantized_model(model)  # the same weights, run in float
    runners = list(torch_runners(model, opt.img_size, opt.batch, device, opt.compile))
    runners += graphs.onnx_runners(model, opt.img_size, opt.batch, device, tmp, threads=opt.threads)
    if int8 is not None:
        qdq = checked_flavour(int8, 'onnx', weights, opt)
        runners += flavoured(graphs.onnx_runners(int8, opt.img_size, opt.batch, device, tmp,
                                                 'onnxruntime int8', opt.threads, qdq), qdq)
    if opt.openvino:
        runners += graphs.openvino_runners(model, opt.img_size, opt.batch, tmp,
                                           threads=opt.threads)
        if int8 is not None:
            qdq = checked_flavour(int8, 'openvino', weights, opt)
            runners += flavoured(graphs.openvino_runners(int8, opt.img_size, opt.batch, tmp,
                                                         'openvino int8', opt.threads, qdq), qdq)
    if opt.ncnn:
        runners += ncnn_runners(model, opt, tmp)
    info = model.info(opt.img_size)
    for meta, _ in runners:
        meta.update(weights=str(weights), params=info['params'], bflops=info['bflops'])
    return runners


def ncnn_runners(model, opt, tmp):
    """ncnn fp32 (export.py --format ncnn) at batch 1, the way ncnn deploys: one image at a
    time; a fresh net per block, as the other graphs."""
    from export.ncnn import export_ncnn
    from models.ncnn_model import NcnnModel
    size = (opt.img_size, opt.img_size)
    return list(graphs.graph_runners(
        model, opt.img_size, [b for b in opt.batch if b == 1], tmp, 'ncnn fp32',
        lambda cpu_model, stem, _: export_ncnn(cpu_model, stem, size)[0],
        lambda path: NcnnModel(path, opt.threads).raw))


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
    p = Parser(prog='bench/speed/latency.py', description=__doc__.splitlines()[0])
    p.add_argument('--weights', nargs='+', default=['weights/yolov3-mini.pt'])
    p.add_argument('--img-size', type=int, default=320)
    p.add_argument('--batch', type=int, nargs='+', default=[1, 8])
    p.add_argument('--runs', type=int, default=30)
    p.add_argument('--warmup', type=int, default=5)
    p.add_argument('--device', default='cpu')
    p.add_argument('--compile', action='store_true', help='also time torch.compile')
    p.add_argument('--openvino', action='store_true',
                   help='also time OpenVINO (its int8 rows from --qdq openvino graphs)')
    p.add_argument('--ncnn', action='store_true',
                   help='also time ncnn fp32 (export.py --format ncnn), batch 1')
    p.add_argument('--int8', action='store_true',
                   help='also time an int8 version of float checkpoints (calibrated on '
                        '--calib-images); quantized checkpoints always get their own')
    p.add_argument('--calib-images', default='data/shapes/train.txt')
    p.add_argument('--calib', type=int, default=32)
    p.add_argument('--no-check', dest='check', action='store_false',
                   help="time the int8 graph flavours as they are written without export.py's "
                        'int8 check choosing them (the fused onnxruntime one, OpenVINO\'s 7-bit)')
    p.add_argument('--threads', type=int, default=0,
                   help="intra-op threads of torch, onnxruntime and OpenVINO (0: torch's current "
                        "count)")
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
    write_result(opt.out, {'device': str(device), 'img_size': opt.img_size,
                           'threads': opt.threads, 'results': results})
    print(f'saved {opt.out}')


if __name__ == '__main__':
    main()
