"""The activations a cfg may name, as darknet computes them (activations.h of AlexeyAB's
darknet), plus the toolkit's hswish / hard_sigmoid (MobileNetV3), which darknet does not have.

Every module is element-wise and never in place: outputs are routed to later layers.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Leaky(nn.LeakyReLU):
    def __init__(self):
        super().__init__(0.1)  # darknet's slope


class _Elementwise(nn.Module):
    """An activation given by a function of x."""
    fn = staticmethod(lambda x: x)

    def forward(self, x):
        return self.fn(x)


class HardSigmoid(_Elementwise):
    fn = staticmethod(lambda x: F.relu6(x + 3.0) / 6.0)


class Loggy(_Elementwise):
    fn = staticmethod(lambda x: 2 * torch.sigmoid(x) - 1)


class Relie(_Elementwise):
    fn = staticmethod(lambda x: torch.where(x > 0, x, 0.01 * x))


class Ramp(_Elementwise):
    fn = staticmethod(lambda x: x * (x > 0) + 0.1 * x)


class Plse(_Elementwise):
    fn = staticmethod(lambda x: torch.where(x < -4, 0.01 * (x + 4), torch.where(
        x > 4, 0.01 * (x - 4) + 1, 0.125 * x + 0.5)))


class Hardtan(_Elementwise):
    fn = staticmethod(lambda x: x.clamp(-1, 1))


class Lhtan(_Elementwise):
    fn = staticmethod(lambda x: torch.where(x < 0, 0.001 * x, torch.where(
        x > 1, 0.001 * (x - 1) + 1, x)))


class Stair(_Elementwise):
    """floor(x / 2) where floor(x) is even, else (x - floor(x)) + floor(x / 2)."""
    fn = staticmethod(lambda x: torch.where(torch.floor(x) % 2 == 0, torch.floor(x / 2),
                                            x - torch.floor(x) + torch.floor(x / 2)))


class HardMish(_Elementwise):
    fn = staticmethod(lambda x: torch.where(x > 0, x, torch.where(x > -2, x * x / 2 + x,
                                                                  torch.zeros_like(x))))


class Selu(_Elementwise):
    """darknet's constants (1.0507, 1.6732), which torch's SELU rounds differently."""
    fn = staticmethod(lambda x: torch.where(x >= 0, 1.0507 * x,
                                            1.0507 * 1.6732 * (torch.exp(x) - 1)))


def _gelu():
    return nn.GELU(approximate='tanh')  # darknet's: 0.5 x (1 + tanh(0.797885 x + 0.035677 x^3))


ACTIVATIONS = {
    'linear': nn.Identity, 'leaky': Leaky, 'relu': nn.ReLU, 'relu6': nn.ReLU6, 'mish': nn.Mish,
    'swish': nn.SiLU, 'logistic': nn.Sigmoid, 'tanh': nn.Tanh, 'elu': nn.ELU, 'selu': Selu,
    'gelu': _gelu, 'loggy': Loggy, 'relie': Relie, 'ramp': Ramp, 'plse': Plse,
    'hardtan': Hardtan, 'lhtan': Lhtan, 'stair': Stair, 'hard_mish': HardMish,
    'hswish': nn.Hardswish, 'h_swish': nn.Hardswish, 'hard_sigmoid': HardSigmoid,
}


def make_activation(name: str) -> nn.Module:
    act = ACTIVATIONS[name]()
    if hasattr(act, 'inplace'):
        act.inplace = False  # outputs are routed to later layers, never overwrite them
    return act


def activation_name(act: nn.Module) -> str:
    """The cfg name of an activation module (the first, for aliases)."""
    for name, kind in ACTIVATIONS.items():
        if isinstance(kind, type) and type(act) is kind:
            return name
    if isinstance(act, nn.GELU):
        return 'gelu'
    raise KeyError(type(act).__name__)
