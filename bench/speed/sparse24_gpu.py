"""Dense vs 2:4 sparse tensor-core time of a network's 2:4 convs, through torch's semi-structured
sparse tensors (cuSPARSELt or CUTLASS), on a CUDA GPU of the Ampere generation or later.

torch's semi-structured tensors multiply matrices, not convolutions, so each conv is timed as the
GEMM an implicit-GEMM conv kernel runs: input patches in channels-last order (kernel row, kernel
column, channel) times the weights laid out the same way, where every run of 4 input channels at
one kernel position (the toolkit's 2:4 grouping) is 4 consecutive values of the reduction axis,
as the sparse tensor cores need. Before timing, the GEMM on the masked weights is checked against
F.conv2d, and the sparse GEMM against the dense one.

    python3 -m bench.speed.sparse24_gpu --weights weights/yolov3-mini.pt --batch 1 16

Feeds docs/results/sparsity.md.
"""
from __future__ import annotations

import argparse
import statistics

import torch
import torch.nn.functional as F

from bench.provenance import write_result
from models.weights import load_model
from models.sparse24 import mask_24, sparse_layers

PAD_ROWS, PAD_COLS = 64, 64  # the sparse kernels' tile: smaller layers are padded with zeros


def conv_inputs(model, size, batch):
    """{layer: its input} for a forward at ``size`` pixels."""
    seen, hooks = {}, []
    for i, m in enumerate(model.module_list):
        hooks.append(m.register_forward_hook(
            lambda mod, args, out, i=i: seen.__setitem__(i, args[0].detach())))
    with torch.no_grad():
        model(torch.rand(batch, model.in_channels, size, size))
    for h in hooks:
        h.remove()
    return seen


def patches(x, conv):
    """(N * out positions, kh * kw * C): conv's input patches in channels-last order."""
    kh, kw = conv.kernel_size
    cols = F.unfold(x, conv.kernel_size, conv.dilation, conv.padding, conv.stride)
    n, _, positions = cols.shape
    cols = cols.reshape(n, x.shape[1], kh * kw, positions).permute(0, 3, 2, 1)
    return cols.reshape(n * positions, kh * kw * x.shape[1])


def gemm_weight(conv):
    """(out, kh * kw * C): the weights 2:4-masked and laid out like ``patches``."""
    w = conv.weight.detach() * mask_24(conv.weight)
    return w.permute(0, 2, 3, 1).reshape(w.shape[0], -1)


def pad_to(t, rows, cols):
    return F.pad(t, (0, -t.shape[1] % cols, 0, -t.shape[0] % rows))


def check_layout(model, inputs, layers):
    """The largest |conv - GEMM| over the layers (float32): the layout is the conv's."""
    worst = 0.0
    for i in layers:
        conv = model.module_list[i].conv
        x = inputs[i]
        w = conv.weight.detach() * mask_24(conv.weight)
        want = F.conv2d(x, w, None, conv.stride, conv.padding, conv.dilation)
        got = patches(x, conv) @ gemm_weight(conv).T
        got = got.reshape(x.shape[0], *want.shape[2:], -1).permute(0, 3, 1, 2)
        worst = max(worst, (got - want).abs().max().item() / max(1.0, want.abs().max().item()))
    return worst


def timed(fn, reps, rounds=5):
    """Median ms per call over ``rounds`` blocks of ``reps`` calls (CUDA events)."""
    times = []
    for _ in range(rounds):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(reps):
            fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / reps)
    return statistics.median(times)


def layer_row(i, conv, x, reps):
    from torch.sparse import to_sparse_semi_structured
    a = pad_to(patches(x, conv).half().cuda(), PAD_COLS, PAD_COLS)
    w = pad_to(gemm_weight(conv).half().cuda(), PAD_ROWS, PAD_COLS)
    w_sparse = to_sparse_semi_structured(w)
    dense, sparse = (lambda: F.linear(a, w)), (lambda: F.linear(a, w_sparse))
    err = (sparse() - dense()).abs().max().item() / max(1.0, dense().abs().max().item())
    for fn in (dense, sparse):  # warm-up: cuSPARSELt picks its algorithm on the first call
        fn()
    torch.cuda.synchronize()
    t_dense, t_sparse = timed(dense, reps), timed(sparse, reps)
    t_dense = statistics.median([t_dense, timed(dense, reps)])  # taking turns with the sparse
    return {'layer': i, 'gemm': f'{a.shape[0]}x{w.shape[0]}x{a.shape[1]}',
            'dense_ms': t_dense, 'sparse_ms': t_sparse, 'speedup': t_dense / t_sparse,
            'rel_err': err}


def big_gemm(n, reps):
    """A large square GEMM: what the hardware gives when the matrices fill it."""
    from torch.sparse import to_sparse_semi_structured
    w = torch.randn(n, n, dtype=torch.half, device='cuda')
    w = w * mask_24(w[:, :, None, None])[:, :, 0, 0]  # runs of 4 along the reduction axis
    a = torch.randn(n, n, dtype=torch.half, device='cuda')
    ws = to_sparse_semi_structured(w)
    F.linear(a, w), F.linear(a, ws)
    t_dense, t_sparse = timed(lambda: F.linear(a, w), reps), timed(lambda: F.linear(a, ws), reps)
    return {'layer': 'square', 'gemm': f'{n}x{n}x{n}', 'dense_ms': t_dense,
            'sparse_ms': t_sparse, 'speedup': t_dense / t_sparse, 'rel_err': 0.0}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--weights', default='weights/yolov3-mini.pt')
    p.add_argument('--cfg', default='')
    p.add_argument('--size', type=int, default=320)
    p.add_argument('--batch', type=int, nargs='+', default=[1, 16])
    p.add_argument('--reps', type=int, default=50)
    p.add_argument('--json', default='', help='also write the rows here')
    opt = p.parse_args(argv)
    model = load_model(opt.weights, opt.cfg or None).float().eval()
    layers, dense = sparse_layers(model)
    inputs = conv_inputs(model, opt.size, 1)
    print(f'{len(layers)} 2:4 convs ({len(dense)} dense: {dense}); conv == channels-last GEMM '
          f'within {check_layout(model, inputs, layers):.1e} (relative)')
    if not torch.cuda.is_available():
        raise SystemExit('no CUDA device: 2:4 sparse tensor cores need an NVIDIA GPU of the '
                         'Ampere generation or later (the layout check above ran on the CPU)')
    from torch.sparse import SparseSemiStructuredTensor
    name = torch.cuda.get_device_name()
    rows = []
    for b in opt.batch:
        inputs = conv_inputs(model, opt.size, b)
        for i in layers:
            try:
                row = layer_row(i, model.module_list[i].conv, inputs[i], opt.reps)
            except RuntimeError as e:  # a shape the kernels refuse: say so, time the rest
                print(f'layer {i}: {str(e).splitlines()[0]}')
                continue
            rows.append({'batch': b} | row)
        total_d = sum(r['dense_ms'] for r in rows if r['batch'] == b)
        total_s = sum(r['sparse_ms'] for r in rows if r['batch'] == b)
        rows.append({'batch': b, 'layer': 'all', 'gemm': '', 'dense_ms': total_d,
                     'sparse_ms': total_s, 'speedup': total_d / total_s, 'rel_err': 0.0})
    rows.append({'batch': 1} | big_gemm(8192, 20))
    backend = 'CUTLASS' if SparseSemiStructuredTensor._FORCE_CUTLASS else 'cuSPARSELt'
    print(f'{name}, torch {torch.__version__} ({backend}), fp16, {opt.size} px')
    print(f"{'batch':>5} {'layer':>6} {'GEMM MxNxK':>18} {'dense ms':>9} {'2:4 ms':>9} "
          f"{'speedup':>8} {'rel err':>8}")
    for r in rows:
        print(f"{r['batch']:>5} {r['layer']!s:>6} {r['gemm']:>18} {r['dense_ms']:9.4f} "
              f"{r['sparse_ms']:9.4f} {r['speedup']:8.2f} {r['rel_err']:8.1e}")
    if opt.json:
        write_result(opt.json, {'device': name, 'rows': rows})


if __name__ == '__main__':
    main()
