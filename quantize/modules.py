"""Quantized modules: what an integer engine computes, in float (fake quantization).

QuantConvBNAct quantizes its weights (per output channel, or DoReFa) and its output after the
activation function, where engines quantize; the first conv also quantizes the image. With
``bn_fold`` the BN is folded into the weights before they are quantized, as deployment folds it:
while training, the batch statistics still normalize (the output is rescaled by running over
batch std and the bias uses the batch mean: the correction of Jacob et al. / Krishnamoorthi), and
after the BN freeze (or in eval) the running statistics are used, so train and eval agree.

QuantShortcut quantizes the residual sum: a sum of two int8 tensors needs a new scale.
``enabled = False`` turns every fake-quant off: the module is then the float one, exactly.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.layers import ConvBNAct, Shortcut, fold_conv_bn
from quantize.config import QuantMode
from quantize.observers import make_observer
from quantize.quantizers import (affine_params, dorefa_weight, fake_quant, symmetric_range,
                                 symmetric_scale)


class ActQuant(nn.Module):
    """Per-tensor activation fake-quant with its own observer (possibly shared with others)."""

    def __init__(self, config, bits):
        super().__init__()
        self.config, self.bits, self.enabled = config, bits, True
        self.observer = make_observer(config.activation_observer, percentile=config.percentile)

    def params(self):
        """(scale, zero point, qmin, qmax) from the observed range."""
        obs, bits, pow2 = self.observer, self.bits, self.config.fpga
        if self.config.symmetric_activations:
            qmin, qmax = symmetric_range(bits, narrow=False)
            return symmetric_scale(obs.amax(), bits, pow2), torch.zeros_like(obs.lo), qmin, qmax
        scale, zp = affine_params(obs.lo, obs.hi, bits, pow2)
        return scale, zp, 0, 2 ** bits - 1

    def forward(self, x):
        self.observer(x)
        if not self.enabled or self.observer.seen == 0:
            return x
        scale, zp, qmin, qmax = self.params()
        # at least float32 under autocast: bf16 cannot hold x / scale to the nearest integer;
        # float64 stays float64 (an exact reference for the integer runtime)
        wide = x if x.dtype == torch.float64 else x.float()
        return fake_quant(wide, scale.to(wide.dtype), zp, qmin, qmax).to(x.dtype)


class QuantConvBNAct(nn.Module):
    froms: list = []

    def __init__(self, conv, bn, act, config, w_bits, a_bits, quantize_input=False,
                 quantize_output=True):
        super().__init__()
        self.conv, self.bn, self.act = conv, bn, act  # same names: checkpoints keep their keys
        self.config, self.w_bits, self.a_bits = config, w_bits, a_bits
        self.fold = config.bn_fold and isinstance(bn, nn.BatchNorm2d)
        self.enabled, self.bn_frozen = True, False
        # None: a float output (a head's conv with QuantConfig.float_heads)
        self.out_quant = ActQuant(config, a_bits) if quantize_output else None
        # the image: 8 bits, or as many as the activations when they have more (q16)
        self.in_quant = ActQuant(config, max(8, a_bits)) if quantize_input else None

    @classmethod
    def from_float(cls, m: ConvBNAct, config, w_bits=None, a_bits=None, quantize_input=False,
                   quantize_output=True):
        return cls(m.conv, m.bn, m.act, config, w_bits or config.w_bits, a_bits or config.a_bits,
                   quantize_input, quantize_output)

    def to_float(self) -> ConvBNAct:
        return ConvBNAct(self.conv, self.bn, self.act)

    def quant_weight(self, w, bits=None):
        bits = bits or self.w_bits
        if not self.enabled:
            return w
        if self.config.mode == QuantMode.DOREFA:
            return dorefa_weight(w, bits)
        amax = w.detach().abs().flatten(1).amax(1)
        scale = symmetric_scale(amax, bits, self.config.fpga).view(-1, 1, 1, 1)
        qmin, qmax = symmetric_range(bits, narrow=True)
        return fake_quant(w, scale.to(w.dtype), 0, qmin, qmax)

    def folded_weight_bias(self):
        """The deployed conv: BN folded into the weights with running statistics."""
        return fold_conv_bn(self.conv, self.bn)

    @torch.no_grad()
    def integer_weights(self, bits=None):
        """(q, step, bias): the deployed conv as integer weights q (per output channel c the
        real weights are q[c] * step[c]) and a float bias, BN folded in. Without --BN_Fold the
        BN scales channel c by k after the quantized conv: that maps (q, s) to (sign(k) q,
        |k| s), exactly, so the integers are the fake-quant model's own. ``bits``: quantize the
        float weights to that many bits instead of the model's own (a narrower deployment)."""
        if self.fold:
            w, b = self.folded_weight_bias()
            k = torch.ones_like(b)
        else:
            w = self.conv.weight
            k = torch.ones(w.shape[0], device=w.device)
            b = self.conv.bias if self.conv.bias is not None else torch.zeros_like(k)
            if isinstance(self.bn, nn.BatchNorm2d):
                k = self.bn.weight / torch.sqrt(self.bn.running_var + self.bn.eps)
                b = self.bn.bias + (b - self.bn.running_mean) * k
        wq = self.quant_weight(w, bits)
        step = self.weight_step(w, wq, bits)
        sign = torch.where(k < 0, -1.0, 1.0)
        q = torch.round(wq / step.view(-1, 1, 1, 1)) * sign.view(-1, 1, 1, 1)
        return q, step * k.abs(), b.detach()

    def weight_step(self, w, wq, bits=None):
        """The spacing of the quantized weights wq = quant_weight(w, bits), per output channel."""
        bits = bits or self.w_bits
        n = w.shape[0]
        if self.config.mode == QuantMode.DOREFA and bits == 1:  # sign(w) x mean |w|: one magnitude
            return wq.abs().max().expand(n).clone()
        if self.config.mode == QuantMode.DOREFA:  # (2j - m) / m on the whole layer, m = 2^bits - 1
            return torch.full((n,), 1.0 / (2 ** bits - 1), dtype=wq.dtype, device=wq.device)
        return symmetric_scale(w.abs().flatten(1).amax(1), bits, self.config.fpga)

    def _conv(self, x, w, b=None):
        c = self.conv
        return F.conv2d(x, w, b, c.stride, c.padding, c.dilation, c.groups)

    def _folded(self, x):
        w, b = self.folded_weight_bias()
        y = self._conv(x, self.quant_weight(w))
        if not (self.training and not self.bn_frozen):
            return y + b.view(1, -1, 1, 1)
        bn = self.bn  # training: normalize with this batch's statistics, as the float BN would
        z = self._conv(x, self.conv.weight, self.conv.bias)
        mean, var = z.mean((0, 2, 3)), z.var((0, 2, 3), unbiased=False)
        std_r, std_b = (bn.running_var + bn.eps).sqrt(), (var + bn.eps).sqrt()
        y = y * (std_r / std_b).view(1, -1, 1, 1)  # the weights were folded with std_r
        y = y + (bn.bias - bn.weight * mean / std_b).view(1, -1, 1, 1)
        with torch.no_grad():
            n = z.numel() / z.shape[1]
            bn.running_mean.lerp_(mean.detach().float(), bn.momentum)
            bn.running_var.lerp_(var.detach().float() * n / max(n - 1, 1), bn.momentum)
            bn.num_batches_tracked += 1
        return y

    def _bn(self, z):
        """The BN of an unfolded conv; once frozen, with its running statistics in training too
        (the scales it feeds were observed with them)."""
        bn = self.bn
        if not (self.bn_frozen and self.training and isinstance(bn, nn.BatchNorm2d)):
            return bn(z)
        return F.batch_norm(z, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0,
                            bn.eps)

    def out_shape(self, shape, _=()):
        return ConvBNAct.out_shape(self, shape)

    def bflops(self, shape, out, _=()):
        return ConvBNAct.bflops(self, shape, out)

    def forward(self, x):
        if self.in_quant is not None:
            x = self.in_quant(x)
        if self.fold:
            y = self._folded(x)
        else:
            y = self._bn(self._conv(x, self.quant_weight(self.conv.weight), self.conv.bias))
        y = self.act(y)
        return y if self.out_quant is None else self.out_quant(y)


class QuantShortcut(nn.Module):
    """A residual sum whose output is requantized."""

    def __init__(self, shortcut: Shortcut, config, a_bits):
        super().__init__()
        self.shortcut, self.froms = shortcut, shortcut.froms
        self.out_quant = ActQuant(config, a_bits)

    def forward(self, x, inputs):
        return self.out_quant(self.shortcut(x, inputs))

    def out_shape(self, *args):
        return self.shortcut.out_shape(*args)

    def bflops(self, *args):
        return self.shortcut.bflops(*args)
