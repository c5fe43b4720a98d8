"""The quantization hook of train.py (--quantized 1|2|3 --w-bits --a-bits --BN_Fold --FPGA).

The swap happens when the model is built (before the optimizer, so the optimizer sees the same
parameters); observers and BN statistics freeze from --quant-freeze-epoch on (default: the last
30% of the epochs, so the final epochs fine-tune against fixed scales; 0: from the start). A
quantized --weights (a PTQ or QAT checkpoint of the same quantization) starts the run with its
ranges as well as its weights: QAT then refines a calibrated model instead of re-observing.
"""
from __future__ import annotations

import math
from dataclasses import replace

from models.weights import WeightsError, inference_state, load_checkpoint
from quantize.config import QuantConfig
from quantize.loader import saved_config
from quantize.qat import freeze, quantize_model
from utils.errors import OptionError
from utils.hooks import TrainHook


class QuantHook(TrainHook):
    name = 'quantize'

    def __init__(self, config: QuantConfig, freeze_epoch: int, start='', resumed=''):
        self.config, self.freeze_epoch, self.frozen = config, freeze_epoch, False
        self.start = start  # the run's .pt --weights: its ranges too, if it is quantized
        self.source = start or resumed  # the checkpoint whose quantization the run continues

    def on_model(self, model):
        ckpt = load_checkpoint(self.source) if self.source else {}
        quant = ckpt.get('quant')
        if isinstance(quant, dict):  # its ranges were observed with its own scale sharing
            self.config = replace(self.config,
                                  share_copies=bool(quant.get('share_copies', False)))
        model = quantize_model(model, self.config)
        if self.start:
            load_quantized_start(model, ckpt, self.start, self.config)
        if self.freeze_epoch == 0:
            self.frozen = True
            freeze(model)
        return model

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


SAME_KEYS = ('mode', 'w_bits', 'a_bits', 'bn_fold', 'fpga', 'float_heads', 'share_copies')


def load_quantized_start(model, ckpt, path, config):
    """A quantized start checkpoint's (ckpt, read from path) weights and observed ranges, into
    the model just quantized the same way (a checkpoint of another quantization would leave
    its ranges meaningless); a float one has been loaded already (load_pretrained)."""
    if not ckpt.get('quant'):
        return
    saved = saved_config(ckpt['quant'], path)
    differ = [k for k in SAME_KEYS if getattr(saved, k) != getattr(config, k)]
    if differ:
        k = differ[0]
        raise OptionError(f'--weights {path}: quantized with {k}={getattr(saved, k)!r}, this run '
                          f'with {getattr(config, k)!r}: give the flags it was quantized with '
                          f'(--quantized {saved.mode}' + (' --float-heads' if saved.float_heads
                                                          else '') + ')')
    try:
        model.load_state_dict(inference_state(ckpt))
    except RuntimeError as e:
        raise WeightsError(f'{path}: its tensors do not fit this cfg ({str(e).splitlines()[0]})') \
            from None


def quant_hook(opt):
    """The hook for train.py's --quantized flags (TrainOptions), or None without them."""
    if not opt.quantized:
        if opt.BN_Fold or opt.FPGA:
            raise OptionError('--BN_Fold and --FPGA shape quantization-aware training: give '
                              '--quantized 1, 2 or 3 too')
        return None
    start = opt.weights if str(opt.weights).endswith('.pt') and not opt.resume else ''
    # share_copies: every new quantization shares them; a quantized start or resumed
    # checkpoint keeps its own (QuantHook.on_model reads it)
    config = QuantConfig(mode=opt.quantized, w_bits=opt.w_bits, a_bits=opt.a_bits,
                         bn_fold=opt.BN_Fold, fpga=opt.FPGA, observer=opt.quant_observer,
                         float_heads=opt.float_heads, share_copies=True)
    freeze_epoch = opt.quant_freeze_epoch
    if freeze_epoch < 0:
        freeze_epoch = max(1, math.ceil(0.7 * opt.epochs))
    resumed = opt.resume if isinstance(opt.resume, str) and opt.resume.endswith('.pt') else ''
    return QuantHook(config, freeze_epoch, start, resumed)
