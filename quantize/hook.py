"""The quantization hook of train.py (--quantized 1|2|3 --w-bits --a-bits --BN_Fold --FPGA).

The swap happens when the model is built (before the optimizer, so the optimizer sees the same
parameters); observers and folded BN statistics freeze from --quant-freeze-epoch on (default:
the last 30% of the epochs, so the final epochs fine-tune against fixed scales).
"""
from __future__ import annotations

import math

from quantize.config import QuantConfig
from quantize.qat import freeze, quantize_model
from utils.errors import OptionError
from utils.hooks import TrainHook


class QuantHook(TrainHook):
    name = 'quantize'

    def __init__(self, config: QuantConfig, freeze_epoch: int):
        self.config, self.freeze_epoch, self.frozen = config, freeze_epoch, False

    def on_model(self, model):
        return quantize_model(model, self.config)

    def on_epoch_end(self, model, epoch):
        if not self.frozen and epoch + 1 >= self.freeze_epoch:
            self.frozen = True
        if self.frozen:
            freeze(model)
        return {}

    def state(self):
        return {'frozen': self.frozen}

    def load_state(self, state):
        self.frozen = bool(state.get('frozen', False))


def quant_hook(opt):
    """The hook for train.py's --quantized flags (TrainOptions), or None without them."""
    if not opt.quantized:
        if opt.BN_Fold or opt.FPGA:
            raise OptionError('--BN_Fold and --FPGA shape quantization-aware training: give '
                              '--quantized 1, 2 or 3 too')
        return None
    config = QuantConfig(mode=opt.quantized, w_bits=opt.w_bits, a_bits=opt.a_bits,
                         bn_fold=opt.BN_Fold, fpga=opt.FPGA, observer=opt.quant_observer,
                         float_heads=opt.float_heads)
    freeze_epoch = opt.quant_freeze_epoch
    if freeze_epoch < 0:
        freeze_epoch = max(1, math.ceil(0.7 * opt.epochs))
    return QuantHook(config, freeze_epoch)
