"""Checkpoints to models, replaying the steps a checkpoint records: the one place above models/
and quantize/ that knows both (models/ never imports quantize/).

A QAT or PTQ checkpoint holds its float cfg, its quantization config and the quantized model's
tensors: the model is built from the cfg, quantized with that config, then given the tensors. A
pruned model needs nothing replayed: its reduced cfg is the checkpoint's own.
"""
from __future__ import annotations

import torch

from models.darknet import Darknet, is_quantized
from models.ncnn_model import NcnnModel
from models.onnx_model import OnnxModel
from models.openvino_model import OpenVinoModel
from models.weights import WeightsError, load_checkpoint, model_from_checkpoint
from models.weights import load_model as load_float_model
from quantize.config import QuantConfig
from quantize.int_model import IntModel
from quantize.qat import quantize_model
from utils.errors import OptionError
from utils.log import LOGGER
from utils.torch_utils import inference_dtype


def load_model(weights, cfg=None):
    """Any checkpoint (float, QAT, PTQ) or cfg + darknet file, as the model it holds."""
    if not str(weights).endswith('.pt'):
        return load_float_model(weights, cfg)
    ckpt = load_checkpoint(weights)
    quant = ckpt.get('quant')
    if quant is None:
        return model_from_checkpoint(ckpt, weights, cfg, None)
    config = saved_config(quant, weights)
    return model_from_checkpoint(ckpt, weights, cfg, lambda m: quantize_model(m, config))


def saved_config(quant, weights):
    """The QuantConfig a checkpoint records; an unknown key or a bad value is refused by name."""
    if not isinstance(quant, dict):
        raise WeightsError(f'{weights}: its quantization config is not a mapping')
    known = QuantConfig.__dataclass_fields__
    stray = [k for k in quant if k not in known]
    if stray:
        raise WeightsError(f'{weights}: its quantization config has an unknown key {stray[0]!r} '
                           f"(known: {', '.join(known)})")
    try:
        return QuantConfig(**quant)
    except (OptionError, TypeError) as e:
        raise WeightsError(f'{weights}: its quantization config: {e}') from None


def load_for_inference(weights, cfg, device):
    """What test.py and detect.py run: a checkpoint (float, QAT, PTQ), darknet weights, an
    exported .onnx graph (run by onnxruntime on the CPU), an OpenVINO IR's .xml, an ncnn
    .param, an integer
    model's ``_int.json`` (run by quantize/int_runtime.py) or, with a cfg alone, its random initial
    weights (with a warning); in eval mode on ``device``."""
    if weights and str(weights).endswith('.onnx'):
        return OnnxModel(weights)
    if weights and str(weights).endswith('.xml'):
        return OpenVinoModel(weights)
    if weights and str(weights).endswith('.json'):
        return IntModel(weights)
    if weights and str(weights).endswith('.param'):
        return NcnnModel(weights)
    if weights:
        return inference_form(load_model(weights, cfg or None).to(device).eval())
    if not cfg:
        raise WeightsError('give --weights (a .pt or darknet .weights with --cfg) or at least '
                           '--cfg')
    LOGGER.warning(f'WARNING: no --weights: {cfg} runs with random initial weights')
    return inference_form(Darknet(cfg).to(device).eval())


def inference_form(model):
    """A float model as it runs fastest with the same outputs: each BN folded into its conv
    and the tensors channels-last, oneDNN's layout on CPUs and the tensor cores' on GPUs
    (docs/results/evaluation.md); a quantized one as it is (its fake-quant works on the
    unfolded weights). Changes ``model``."""
    if is_quantized(model):
        return model
    return model.fuse().to(memory_format=torch.channels_last)


def autocast_dtype(model, device, amp, weights):
    """--amp of test.py and detect.py (utils.torch_utils.inference_dtype) for a model from
    load_for_inference: reduced precision applies to float torch models; exported graphs,
    integer and quantized models run their own precision and refuse an explicit --amp."""
    if not isinstance(model, torch.nn.Module) or is_quantized(model):
        if amp:
            raise OptionError(f'--amp: {weights} runs in its own precision (an exported graph, '
                              'an integer or a quantized model); --amp applies to float models')
        return None
    return inference_dtype(device, amp)
