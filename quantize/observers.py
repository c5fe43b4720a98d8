"""Observers record the range of what they see; they never quantize (fake-quant modules ask them
for a range). Frozen observers (``enabled`` False, or the module in eval mode) keep their range.

MinMax: the widest range seen. EMA: a moving average of each batch's min and max (Jacob et al.).
Percentile: a moving average of each batch's p-th and (100-p)-th percentile, robust to outliers.
All are per tensor; weight ranges are read from the weights themselves (quantize/modules.py).
"""
from __future__ import annotations

import torch
from torch import nn

from utils.errors import OptionError


class Observer(nn.Module):
    def __init__(self):
        super().__init__()
        self.enabled = True
        self.register_buffer('lo', torch.zeros(1))
        self.register_buffer('hi', torch.zeros(1))
        self.register_buffer('seen', torch.zeros((), dtype=torch.long))

    def _batch_range(self, x):
        x = x.detach().float()
        return x.amin().view(1), x.amax().view(1)

    def forward(self, x):
        if self.enabled and self.training:
            lo, hi = self._batch_range(x)
            self.update(lo, hi)
            self.seen += 1
        return x

    def update(self, lo, hi):
        if self.seen == 0:
            self.lo.copy_(lo)
            self.hi.copy_(hi)
        else:
            self.lo.copy_(torch.minimum(self.lo, lo))
            self.hi.copy_(torch.maximum(self.hi, hi))

    def amax(self):
        return torch.maximum(self.lo.abs(), self.hi.abs())


class EMAObserver(Observer):
    def __init__(self, momentum=0.01):
        super().__init__()
        self.momentum = momentum

    def update(self, lo, hi):
        if self.seen == 0:
            super().update(lo, hi)
        else:
            self.lo.lerp_(lo, self.momentum)
            self.hi.lerp_(hi, self.momentum)


class PercentileObserver(EMAObserver):
    def __init__(self, percentile=99.99, momentum=0.01):
        super().__init__(momentum)
        self.q = percentile / 100

    def _batch_range(self, x):
        x = x.detach().float().flatten()
        if x.numel() > 2 ** 20:  # torch.quantile's input limit; a strided sample suffices
            x = x[:: x.numel() // 2 ** 20 + 1]
        q = torch.tensor([1 - self.q, self.q], device=x.device)
        lo, hi = torch.quantile(x, q)
        return lo.view(1), hi.view(1)


def make_observer(kind, percentile=99.99):
    if kind == 'minmax':
        return Observer()
    if kind == 'ema':
        return EMAObserver()
    if kind == 'percentile':
        return PercentileObserver(percentile)
    raise OptionError(f'unknown observer {kind!r}')
