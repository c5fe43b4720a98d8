"""What to quantize and how: one dataclass that train.py, PTQ, export and checkpoints share.

Modes (train.py --quantized):
  1  Google (Jacob et al. 2018): weights per output channel (symmetric), activations per tensor
     affine (zero point) with moving-average ranges.
  2  DoReFa (Zhou et al. 2016): k-bit weights through tanh normalisation (k = 1: sign x mean |w|),
     activations clipped to their observed range and quantized at a_bits; the first and last
     convs stay at 8 bits unless ``dorefa_all``.
  3  TensorRT-style: symmetric per-channel int8 weights, symmetric per-tensor activations
     (zero point 0) with a calibrated amax; what TensorRT's Q/DQ ONNX import consumes.
With ``float_heads`` the convs that feed [yolo] (and segmentation) heads leave their output in
float, as engines leave a network's last conv when no quantize node follows it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import IntEnum

from utils.errors import OptionError



class QuantMode(IntEnum):
    """train.py --quantized N: the numbers users type (and checkpoints keep), the names the code
    tests."""
    GOOGLE = 1
    DOREFA = 2
    TENSORRT = 3


MODES = {int(m): m.name.lower() for m in QuantMode}
OBSERVERS = ('minmax', 'ema', 'percentile')


@dataclass
class QuantConfig:
    mode: int = 3
    w_bits: int = 8
    a_bits: int = 8
    bn_fold: bool = False       # fold BN into the conv while training (batch statistics)
    fpga: bool = False          # every scale an exact power of two
    # '' = ema (bench/experiments/quant_table.py: better than minmax for 3)
    observer: str = ''
    percentile: float = 99.99   # for observer='percentile'
    dorefa_all: bool = False    # mode 2: also the first and last convs at w_bits / a_bits
    freeze_epoch: int = -1      # observers (and folded BN statistics) freeze from this epoch
    # the convs feeding the heads keep a float output: int8 weights and inputs, but the box
    # regression is not rounded to one 8-bit grid shared with the class logits (on the
    # COCO-pretrained yolov3-tiny that grid cost 0.7 point of mAP@0.5:0.95, docs/results/real.md).
    # False in checkpoints that predate it; fixed-point targets (export_int, C) need it False
    float_heads: bool = False
    # a concat's (or sum's) inputs share one scale also where one arrives through a route of a
    # single layer (a copy or a channel slice, as Yolo-Fastest's `[route] layers=-7` before its
    # upsample): the integer export needs it. False in checkpoints that predate it (their
    # scales were observed apart), True for every model quantized since.
    share_copies: bool = False

    def __post_init__(self):
        if self.mode not in MODES:
            raise OptionError(f'--quantized must be one of {sorted(MODES)}, got {self.mode}')
        self.mode = int(self.mode)  # a plain number in checkpoints (they load weights_only)
        for name in ('w_bits', 'a_bits'):
            bits = getattr(self, name)
            dorefa = self.mode == QuantMode.DOREFA
            low = 1 if (dorefa and name == 'w_bits') else 2
            high = 8 if dorefa else 16  # 16: the q16 fixed-point format
            if not low <= bits <= high:
                raise OptionError(f'--{name.replace("_", "-")} must be in {low}..{high} for mode '
                                 f'{self.mode}, got {bits}')
        if self.observer and self.observer not in OBSERVERS:
            raise OptionError(f"observer must be one of {', '.join(OBSERVERS)}, got "
                             f"'{self.observer}'")

    @property
    def activation_observer(self) -> str:
        return self.observer or 'ema'

    @property
    def symmetric_activations(self) -> bool:
        return self.mode == QuantMode.TENSORRT

    def to_dict(self) -> dict:
        return asdict(self)
