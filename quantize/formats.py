"""The integer number formats, one table that PTQ, the integer export, its runtime, its schema and
the C export read: s8 is int8 with zero points and float multipliers (TFLite style); q8 and q16
are power-of-two Q formats (every scale a shift, BN folded into the weights), what FPGAs and
MCUs without a multiplier for scales take."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class NumberFormat:
    name: str
    dtype: type          # weights and activations are stored as this
    power_of_two: bool   # scales are shifts; BN is folded into the weights

    @property
    def bits(self) -> int:
        return np.iinfo(self.dtype).bits

    def quant_config(self) -> dict:
        """The QuantConfig keywords that quantize a model into this format."""
        if not self.power_of_two:
            return {}
        return {'fpga': True, 'bn_fold': True, 'w_bits': self.bits, 'a_bits': self.bits}


FORMATS = {f.name: f for f in (NumberFormat('s8', np.int8, False),
                                NumberFormat('q8', np.int8, True),
                                NumberFormat('q16', np.int16, True))}
WIDTH = {name: f.dtype for name, f in FORMATS.items()}  # the runtime's storage per format
