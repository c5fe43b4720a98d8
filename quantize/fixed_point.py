"""Integer requantization: a real multiplier as an integer M and a right shift n.

``requantize(a, M, n, B)`` is (a M + B) / 2^n rounded to the nearest integer, ties to even (as
torch.round and numpy.rint round, so the fixed-point model rounds where its fake-quant model
does), in integers alone: with p = a M + B, q = floor(p / 2^n) and r = p - q 2^n, the result is
q + 1 when r > 2^(n-1), or r = 2^(n-1) and q is odd, else q. The Python runtime (numpy int64)
and the exported C code (int64_t, the floor division written out because C99 leaves the right
shift of a negative number to the compiler) compute exactly this: their outputs agree bit for
bit.

``multiplier(real, acc_bits)`` picks M with as many bits as an int64 product leaves once the
accumulator needs ``acc_bits`` (at most 31, so M fits an int32). A power of two 2^-s gives a
power-of-two M = 2^k and n = s + k: a left shift, then a rounding right shift. The k extra bits
are the fraction bits of the bias B added before the shift; without them the bias would round to
whole steps of 2^-s and flip roundings the fake-quant model does not.
"""
from __future__ import annotations

import numpy as np

from utils.errors import ToolkitError

INT64_BITS = 62  # |a * M| < 2^62 leaves room for the rounding term


class FixedPointError(ToolkitError, ValueError):
    """A multiplier or accumulator that does not fit the integer types."""


def multiplier(real, acc_bits):
    """(M, n) arrays with M * 2^-n ~= real (> 0), |a| < 2^acc_bits times M within int64."""
    real = np.atleast_1d(np.asarray(real, np.float64))
    if (real <= 0).any() or not np.isfinite(real).all():
        raise FixedPointError(f'requantization multipliers must be positive, got {real.min()}')
    bits = min(31, INT64_BITS - int(acc_bits))
    if bits < 8:
        raise FixedPointError(f'an accumulator of {acc_bits} bits leaves {bits} bits for the '
                              'multiplier in 64-bit integers')
    exp = np.floor(np.log2(real)).astype(np.int64)
    n = bits - 1 - exp  # M = real * 2^n in [2^(bits-1), 2^bits)
    m = np.rint(real * np.exp2(n.astype(np.float64))).astype(np.int64)
    top = m >= 2 ** bits  # rounded up to the next power
    m[top] //= 2
    n[top] -= 1
    if (n < 0).any():  # real >= 2^bits: M absorbs the left shift
        m = np.where(n < 0, m << np.maximum(-n, 0), m)
        n = np.maximum(n, 0)
    if (n > INT64_BITS).any():  # shifting a 64-bit integer that far is undefined in C
        raise FixedPointError(f'a requantization multiplier of {real.min():.3g} is too small '
                              'for a 64-bit shift')
    return m, n


def requantize(a, m, n, b=0):
    """(a * m + b) / 2^n rounded half to even, elementwise (n = 0: a * m + b), int64.

    floor((p + 2^(n-1) - 1 + parity) / 2^n) with parity = floor(p / 2^n) mod 2 is the
    half-to-even rounding of the docstring in one pass less than comparing remainders: below half
    and above it the extra 0 or 1 cannot cross a multiple of 2^n, at exactly half it rounds up
    only when floor(p / 2^n) is odd."""
    n = np.asarray(n, np.int64)
    p = np.asarray(a, np.int64) * m
    p += b
    if not n.any():
        return p
    parity = p >> n  # numpy's >> on int64 is the floor division by 2^n
    parity &= (n > 0).astype(np.int64)
    p += parity
    p += np.where(n > 0, np.left_shift(np.int64(1), np.maximum(n - 1, 0)) - 1, 0)
    p >>= n
    return p


def bits_for(bound) -> int:
    """Bits of magnitude an integer up to ``bound`` needs."""
    return int(np.ceil(np.log2(float(bound) + 1)))


def is_power_of_two(real, rtol=1e-9):
    """Whether every value is a power of two (within rtol: float scales of 2^k)."""
    real = np.atleast_1d(np.asarray(real, np.float64))
    return bool(np.allclose(real, np.exp2(np.rint(np.log2(real))), rtol=rtol, atol=0))
