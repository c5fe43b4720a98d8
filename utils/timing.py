"""Timing that users can compare: runners taking turns, so the machine's drift cancels out.

A runner is ``(meta, make)``: ``make()`` returns the function to time (a fresh session or a
closure over a prepared input). bench/speed/latency.py, compress.py's latency stage and the prune
report time torch models through here; quantize.graphs.onnx_runners adds onnxruntime ones.
"""
from __future__ import annotations

import copy
import math
import statistics
from functools import partial

import numpy as np
import torch

from utils.torch_utils import time_runs


def interleaved(runners, runs, warmup, blocks=5):
    """(median, p90) ms per runner ``(label, make)``, ``make()`` giving the function to time.
    Runners take turns, a block of runs each: a shared machine's speed drifts over minutes, and
    timing one backend after another puts that drift into their ratios
    (docs/results/latency.md)."""
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


def rows_of(runners, runs, warmup):
    runners = list(runners)
    return [meta | {'median_ms': med, 'p90_ms': p90}
            for (meta, _), (med, p90) in zip(runners, interleaved(runners, runs, warmup))]
