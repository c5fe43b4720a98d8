"""Calibration: choose each activation quantizer's range from a few images, without training.

Two passes over the calibration images: the first records each quantizer's largest |x|, the
second a 2048-bin histogram of |x| on [0, that max]. The methods then pick amax from it (for an
affine quantizer, --asymmetric, the positive and the negative values each get their histogram
and their end: a leaky output spends its levels on [-0.1 a, b], not [-b, b]):

  max         the largest |x| seen (no clipping, coarse steps)
  percentile  the |x| below which ``percentile`` % of the values lie
  mse         the amax that minimises the expected squared error: rounding inside, clipping outside
  entropy     TensorRT's: the amax whose 128-level quantized histogram is closest (KL) to the
              clipped original
"""
from __future__ import annotations

import numpy as np
import torch

from quantize.modules import ActQuant
from utils.datasets import create_dataloader
from utils.errors import OptionError

BINS = 2048
METHODS = ('max', 'percentile', 'mse', 'entropy')


class _Histograms:
    """Forward pre-hooks on every ActQuant that collect maxima, then histograms: of |x| for a
    symmetric quantizer, of the positive values and of the negated negative ones apart for an
    affine one (its two ends are chosen apart)."""

    def __init__(self, model):
        self.quantizers = list(dict.fromkeys(m for m in model.modules()
                                             if isinstance(m, ActQuant)))
        self.amax = {(q, side): 0.0 for q in self.quantizers for side in self.sides(q)}
        self.hist = {key: np.zeros(BINS) for key in self.amax}
        self.pass_ = 'max'
        self.handles = [q.register_forward_pre_hook(self._see) for q in self.quantizers]

    @staticmethod
    def sides(q):
        return ('abs',) if q.config.symmetric_activations else ('pos', 'neg')

    def _see(self, q, inputs):
        x = inputs[0].detach().float()
        for side in self.sides(q):
            if side == 'abs':
                v = x.abs()
            else:  # one sign's values only: the other sign's would pile up at 0
                v = x if side == 'pos' else -x
                v = v[v > 0]
            top = self.amax[q, side]
            if self.pass_ == 'max':
                self.amax[q, side] = max(top, v.max().item() if v.numel() else 0.0)
            elif top > 0:
                self.hist[q, side] += torch.histc(v.clamp(max=top), BINS, 0, top).cpu().numpy()

    def range(self, q, method, percentile):
        """(lo, hi) the method picks for q."""
        pick = {side: pick_amax(self.hist[q, side], self.amax[q, side], method, percentile)
                if self.amax[q, side] > 0 else 0.0 for side in self.sides(q)}
        if 'abs' in pick:
            return -pick['abs'], pick['abs']
        return -pick['neg'], pick['pos']

    def remove(self):
        for h in self.handles:
            h.remove()


def pick_amax(hist, top, method, percentile=99.99):
    """amax from a histogram of |x| over [0, top]."""
    edges = np.linspace(0, top, BINS + 1)
    if method == 'max' or hist.sum() == 0:
        return top
    if method == 'percentile':
        cdf = np.cumsum(hist) / hist.sum()
        return float(edges[1:][np.searchsorted(cdf, percentile / 100)])
    if method == 'mse':
        return _mse_amax(hist, edges)
    if method == 'entropy':
        return _entropy_amax(hist, edges)
    raise OptionError(f"--method must be one of {', '.join(METHODS)}, got '{method}'")


def _mse_amax(hist, edges, levels=127):
    centers = (edges[:-1] + edges[1:]) / 2
    best, best_err = edges[-1], np.inf
    for i in range(BINS // 16, BINS + 1, 8):
        amax = edges[i]
        step = amax / levels
        inside = centers <= amax
        err = (hist[inside] * step ** 2 / 12).sum() + \
            (hist[~inside] * (centers[~inside] - amax) ** 2).sum()
        if err < best_err:
            best, best_err = amax, err
    return float(best)


def _entropy_amax(hist, edges, levels=128):
    """TensorRT's entropy calibration: for each candidate clip, P is the clipped histogram with
    the clipped-off mass piled onto its last bin, Q the same histogram without that mass merged
    into ``levels`` bins and spread back over the nonzero source bins; pick the least KL(P||Q)."""
    best, best_kl = edges[-1], np.inf
    for i in range(levels, BINS + 1, 16):
        sliced = hist[:i].astype(np.float64)
        p = sliced.copy()
        p[-1] += hist[i:].sum()
        nonzero = sliced > 0
        q = np.zeros(i)
        for c in np.array_split(np.arange(i), levels):
            nz = c[nonzero[c]]
            if len(nz):
                q[nz] = sliced[c].sum() / len(nz)
        p, q = p / p.sum(), q / max(q.sum(), 1e-12)
        kl = np.sum(p[p > 0] * np.log(p[p > 0] / np.maximum(q[p > 0], 1e-12)))
        if kl < best_kl:
            best, best_kl = edges[i], kl
    return float(best)


@torch.no_grad()
def calibrate(model, batches, method='max', percentile=99.99):
    """Set every activation quantizer's range from the calibration batches (float images in
    [0, 1]); BN and weights are left alone. Returns {quantizer index: amax}."""
    model.eval()
    probe = _Histograms(model)
    for q in probe.quantizers:
        q.enabled = False  # calibrate on float activations, as TensorRT does
    try:
        for probe.pass_ in ('max', 'hist'):
            for x in batches:
                model(x)
    finally:
        probe.remove()
    chosen = {}
    for k, q in enumerate(probe.quantizers):
        lo, hi = probe.range(q, method, percentile)
        q.observer.lo.fill_(lo)
        q.observer.hi.fill_(hi)
        q.observer.seen.fill_(1)
        q.observer.enabled = False
        q.enabled = True
        chosen[k] = max(-lo, hi)
    return chosen


def calibration_batches(source, nc, n, img_size, batch_size, device, workers,
                        prefix='calibration: '):
    """n images of a source (list file, folder or glob), as float batches in [0, 1]."""
    loader, _ = create_dataloader(source, nc, img_size, batch_size, workers=workers,
                                  shuffle=True, seed=0, prefix=prefix)
    batches, seen = [], 0
    for imgs, *_ in loader:
        batches.append(imgs[: n - seen].to(device).float() / 255)
        seen += len(batches[-1])
        if seen >= n:
            break
    return batches
