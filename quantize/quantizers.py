"""Fake quantization: quantize then dequantize in float, with straight-through gradients.

``fake_quant(x, scale, zero_point, qmin, qmax)`` returns exactly
``(clamp(round(x / scale) + zero_point, qmin, qmax) - zero_point) * scale``; the gradient passes
through where x is inside the range and is zero outside (the clamp's own gradient).
"""
from __future__ import annotations

import torch


def round_ste(x):
    return x + (torch.round(x) - x).detach()


def quantize(x, scale, zero_point, qmin, qmax):
    """The integers a deployment engine stores."""
    return torch.clamp(torch.round(x / scale) + zero_point, qmin, qmax)


def dequantize(q, scale, zero_point):
    return (q - zero_point) * scale


def fake_quant(x, scale, zero_point, qmin, qmax):
    q = torch.clamp(round_ste(x / scale) + zero_point, qmin, qmax)
    return (q - zero_point) * scale


def power_of_two(scale):
    """The next power of two at or above the scale: a shift instead of a multiply, no clipping."""
    return torch.exp2(torch.ceil(torch.log2(scale.clamp(min=2.0 ** -32))))


def symmetric_range(bits, narrow=True):
    """(qmin, qmax): weights use the narrow range -127..127 (TensorRT), activations -128..127."""
    top = 2 ** (bits - 1) - 1
    return (-top if narrow else -top - 1), top


def symmetric_scale(amax, bits, pow2=False):
    scale = amax.clamp(min=1e-8) / (2 ** (bits - 1) - 1)
    return power_of_two(scale) if pow2 else scale


def affine_params(lo, hi, bits, pow2=False):
    """Scale and integer zero point covering [lo, hi] (widened to include 0) in 0..2^bits-1."""
    lo, hi = torch.minimum(lo, torch.zeros_like(lo)), torch.maximum(hi, torch.zeros_like(hi))
    qmax = 2 ** bits - 1
    scale = ((hi - lo) / qmax).clamp(min=1e-8)
    if pow2:
        scale = power_of_two(scale)
    zero_point = torch.clamp(torch.round(-lo / scale), 0, qmax)
    return scale, zero_point


def dorefa_weight(w, bits):
    """DoReFa-Net weights: k = 1 -> sign(w) * mean|w|; else tanh-normalise to [0, 1], quantize to
    k bits, map to [-1, 1]. At most 2^k distinct values per layer."""
    if bits == 1:
        mean = w.abs().mean().detach()
        sign = torch.where(w >= 0, 1.0, -1.0).to(w.dtype)
        return (sign + (w - w.detach())) * mean  # straight through the sign
    t = torch.tanh(w)
    t = t / (2 * t.abs().max().detach()) + 0.5
    n = 2 ** bits - 1
    return 2 * (round_ste(t * n) / n) - 1
