"""Weights in and out: darknet ``.weights`` files and ``.pt`` checkpoints.

Darknet layout: int32 major, minor, revision; ``seen`` as int64 when major*10 + minor >= 2 (int32
before); then float32 per layer in cfg order. A convolution with batch_normalize stores BN beta,
gamma, running mean, running var, then the kernel; without it, the bias then the kernel. A weighted
shortcut stores its weights. Nothing else has parameters.

Checkpoints are dicts of tensors and plain types (cfg text, state dict, epoch, ...), read with
``torch.load(weights_only=True)`` so a stranger's file cannot run code, written atomically.
"""
from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
import torch

from models.darknet import Darknet
from models.layers import ConvBNAct, Shortcut
from utils.errors import ToolkitError
from utils.files import atomic_write_bytes
from utils.log import LOGGER


class WeightsError(ToolkitError, ValueError):
    """A weights or checkpoint problem; the message names the file."""


def darknet_tensors(module) -> list[torch.Tensor]:
    """The tensors of one layer in darknet's file order."""
    if isinstance(module, ConvBNAct):
        bn, conv = module.bn, module.conv
        if isinstance(bn, torch.nn.BatchNorm2d):
            return [bn.bias, bn.weight, bn.running_mean, bn.running_var, conv.weight]
        if conv.bias is None:
            raise WeightsError('a convolution without BN has no bias to write')
        return [conv.bias, conv.weight]
    if isinstance(module, Shortcut) and module.weights is not None:
        return [module.weights]
    return []


def _layers(model, cutoff):
    return list(model.module_list)[:cutoff] if cutoff is not None else list(model.module_list)


def count_darknet_floats(model, cutoff=None) -> int:
    return sum(t.numel() for m in _layers(model, cutoff) for t in darknet_tensors(m))


def read_darknet_file(path):
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise WeightsError(f'{path}: cannot read weights ({e.strerror})') from None
    if len(raw) < 16:
        raise WeightsError(f'{path}: {len(raw)} bytes is too short for a darknet header')
    major, minor, revision = np.frombuffer(raw[:12], np.int32)
    wide_seen = major * 10 + minor >= 2 and major < 1000 and minor < 1000
    seen_dtype, offset = (np.int64, 20) if wide_seen else (np.int32, 16)
    if len(raw) < offset:
        raise WeightsError(f'{path}: {len(raw)} bytes is too short for a darknet header of '
                           f'version {major}.{minor} ({offset} bytes)')
    seen = int(np.frombuffer(raw[12:offset], seen_dtype)[0])
    if (len(raw) - offset) % 4:
        raise WeightsError(f'{path}: {len(raw) - offset} bytes after the header is not a whole '
                           'number of float32 values')
    header = {'major': int(major), 'minor': int(minor), 'revision': int(revision), 'seen': seen}
    return header, np.frombuffer(raw[offset:], np.float32)


def load_darknet_weights(model, path, cutoff=None) -> dict:
    """Fill the model's first ``cutoff`` layers (all by default) from a darknet file.

    Without a cutoff the file must hold exactly the cfg's floats; with one (a backbone such as
    darknet53.conv.74) it must hold at least those of the first ``cutoff`` layers.
    """
    header, data = read_darknet_file(path)
    need = count_darknet_floats(model, cutoff)
    if len(data) < need or (cutoff is None and len(data) != need):
        upto = f' up to layer {cutoff}' if cutoff is not None else ''
        raise WeightsError(f'{path}: holds {len(data)} floats, the cfg needs {need}{upto}; '
                           'weights and cfg do not match')
    ptr = 0
    with torch.no_grad():
        for m in _layers(model, cutoff):
            for t in darknet_tensors(m):
                n = t.numel()
                t.copy_(torch.from_numpy(data[ptr:ptr + n].copy()).view_as(t))
                ptr += n
    return header


def save_darknet_weights(model, path, cutoff=None, seen=0) -> None:
    header = np.array([0, 2, 0], np.int32).tobytes() + np.array([seen], np.int64).tobytes()
    chunks = [header]
    for m in _layers(model, cutoff):
        for t in darknet_tensors(m):
            chunks.append(t.detach().float().cpu().numpy().astype(np.float32).tobytes())
    atomic_write_bytes(path, b''.join(chunks))


def save_checkpoint(ckpt: dict, path) -> None:
    buf = io.BytesIO()
    torch.save(ckpt, buf)
    atomic_write_bytes(path, buf.getvalue())


def _looks_pickled(path):
    """Whether a file starts as torch.save writes (a zip) or as a pickle (protocol 2+)."""
    with open(path, 'rb') as f:
        head = f.read(2)
    return head == b'PK' or (len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5)


def load_checkpoint(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f'{path}: no such checkpoint')
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as e:
        if not _looks_pickled(path):
            raise WeightsError(f'{path}: not a checkpoint (neither a torch zip archive nor a '
                               'pickle)') from None
        reason = str(e).strip().splitlines()[0] if str(e).strip() else 'unsafe pickle'
        raise WeightsError(f'{path}: refused, it holds objects other than tensors and plain types '
                           f'and could run code when loaded ({reason[:160]})') from None
    except (RuntimeError, EOFError, OSError, KeyError, ValueError, IndexError, TypeError) as e:
        if not _looks_pickled(path):  # torch.load's errors on text or random bytes vary
            raise WeightsError(f'{path}: not a checkpoint (neither a torch zip archive nor a '
                               'pickle)') from None
        first_line = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise WeightsError(f'{path}: not a readable checkpoint ({first_line})') from None
    if not isinstance(ckpt, dict) or 'model' not in ckpt:
        raise WeightsError(f"{path}: a checkpoint must be a dict with a 'model' state dict")
    for key in ('model', 'ema'):
        state = ckpt.get(key)
        if state is not None and not (isinstance(state, dict) and all(
                isinstance(v, torch.Tensor) for v in state.values())):
            raise WeightsError(f"{path}: its '{key}' is not a state dict of tensors")
    if not isinstance(ckpt.get('cfg', ''), str):
        raise WeightsError(f"{path}: its 'cfg' is not cfg text")
    return ckpt


def load_state_dict_checked(model, state_dict, source) -> None:
    """Load a state dict whose keys and shapes match exactly; name the first mismatch."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    extra = [k for k in state_dict if k not in own]
    wrong = [k for k in own if k in state_dict and own[k].shape != state_dict[k].shape]
    if missing or extra or wrong:
        k = (wrong or missing or extra)[0]
        if wrong:
            detail = f'{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}'
        else:
            detail = f"'{k}' {'missing from' if missing else 'unexpected in'} checkpoint"
        raise WeightsError(f'{source}: does not fit the model ({len(missing)} missing, '
                           f'{len(extra)} unexpected, {len(wrong)} mis-shaped tensors; '
                           f'first: {detail})')
    model.load_state_dict(state_dict)


def inference_state(ckpt) -> dict:
    """The weights to run: the EMA of a training checkpoint when it has one."""
    return ckpt.get('ema') or ckpt['model']


def load_pretrained(model, path, other_classes=False) -> str:
    """Start training from weights that may not fit exactly; returns what was loaded.

    ``.pt``: tensors whose name and shape match are copied, the rest (say, heads for another class
    count) keep their fresh initialisation. Darknet files: the whole cfg, or a backbone prefix
    (darknet53.conv.74 style) recognised by its float count; with ``other_classes`` (train.py
    -pt) the same architecture trained for another class count (COCO's 80): every layer but the
    convs feeding the [yolo] layers, which start fresh.
    """
    if str(path).endswith('.pt'):
        state = inference_state(load_checkpoint(path))
        own = model.state_dict()
        fits = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        model.load_state_dict(fits, strict=False)
        fresh = sorted({k.rsplit('.', 2)[0] for k in own if k not in fits})
        note = f'; re-initialised (shape differs or missing): {", ".join(fresh)}' if fresh else ''
        return f'{path}: {len(fits)}/{len(own)} tensors loaded{note}'
    _, data = read_darknet_file(path)
    if other_classes:
        return _load_other_classes(model, path, data)
    n_layers = len(model.module_list)
    for cutoff in [None] + list(range(n_layers - 1, 0, -1)):
        if count_darknet_floats(model, cutoff) == len(data):
            load_darknet_weights(model, path, cutoff)
            return f'{path}: ' + ('all layers' if cutoff is None else f'layers 0..{cutoff - 1}')
    hint = (f'; it fits this cfg trained for {_source_classes(model, len(data))} classes: add -pt'
            if _source_classes(model, len(data)) else '')
    raise WeightsError(f'{path}: holds {len(data)} floats, which is neither the whole cfg '
                       f'({count_darknet_floats(model)}) nor the first layers of it{hint}')


def head_convs(model) -> list[int]:
    """The convs whose outputs the [yolo] layers read: their size follows the class count."""
    return [j - 1 for j in model.yolo_layers]


def _head_floats_per_output(model, i):
    """Floats darknet stores per output channel of conv i (its kernel, then bias or BN)."""
    conv = model.module_list[i].conv
    per_kernel = conv.weight[0].numel()
    return per_kernel + (4 if isinstance(model.module_list[i].bn, torch.nn.BatchNorm2d) else 1)


def _source_classes(model, n_floats):
    """The class count whose heads make this cfg hold n_floats, or None."""
    heads = head_convs(model)
    if any(not isinstance(model.module_list[i], ConvBNAct) for i in heads):
        return None
    body = count_darknet_floats(model) - sum(t.numel() for i in heads
                                             for t in darknet_tensors(model.module_list[i]))
    per_class = sum(model.module_list[i + 1].na * _head_floats_per_output(model, i)
                    for i in heads)
    extra = n_floats - body
    if extra <= 0 or extra % per_class:
        return None
    nc = extra // per_class - 5
    return nc if nc >= 1 else None


def _load_other_classes(model, path, data) -> str:
    nc = _source_classes(model, len(data))
    if nc is None:
        raise WeightsError(f'{path}: holds {len(data)} floats, which fits this cfg for no class '
                           f'count (-pt: the same architecture trained on other classes)')
    heads, ptr = set(head_convs(model)), 0
    with torch.no_grad():
        for i, m in enumerate(model.module_list):
            if i in heads:  # the source's head: anchors x (5 + nc) outputs, skipped
                ptr += model.module_list[i + 1].na * (5 + nc) * _head_floats_per_output(model, i)
                continue
            for t in darknet_tensors(m):
                t.copy_(torch.from_numpy(data[ptr:ptr + t.numel()].copy()).view_as(t))
                ptr += t.numel()
    skipped = ', '.join(map(str, sorted(heads)))
    return (f'{path}: all layers but {skipped} (the file is for {nc} classes, this cfg for '
            f'{model.nc}: the convs before the yolo layers start fresh)')


def darknet_cfg(weights, cfg):
    """The cfg to load ``weights`` with: a darknet .weights needs one; a checkpoint or an
    exported graph carries its own (a cfg given with a .pt would replace the one it holds)."""
    return cfg if str(weights).endswith('.weights') else None


def load_model(weights, cfg=None):
    """A float Darknet from a ``.pt`` (its own cfg text unless ``cfg`` is given) or cfg + darknet
    file. A quantized checkpoint is refused: quantize/loader.py rebuilds those."""
    if str(weights).endswith('.pt'):
        ckpt = load_checkpoint(weights)
        if ckpt.get('quant'):
            raise WeightsError(f'{weights}: a quantized (QAT/PTQ) checkpoint; this step needs '
                               'the float model it came from')
        return model_from_checkpoint(ckpt, weights, cfg)
    suffix = Path(weights).suffix.lower()
    if suffix in EXPORTED:
        raise WeightsError(f'{weights}: {EXPORTED[suffix]}, not a checkpoint; this step needs '
                           'the .pt (or darknet .weights with --cfg) it was made from')
    if not cfg:
        raise WeightsError(f'{weights}: a darknet .weights file needs --cfg')
    model = Darknet(cfg)
    load_darknet_weights(model, weights)
    warn_if_not_finite(model, weights)
    return model


EXPORTED = {'.json': 'an integer model (quantize/export_int.py)', '.onnx': 'an ONNX graph',
            '.xml': 'an OpenVINO IR', '.engine': 'a TensorRT engine'}


def warn_if_not_finite(model, source):
    """One warning naming the first layer whose weights hold NaN or infinity: such a model
    scores and draws without failing, so say it once."""
    for name, t in model.state_dict().items():
        if t.is_floating_point() and not torch.isfinite(t).all():
            LOGGER.warning(f'WARNING: {source}: {name} holds NaN or infinite values; its '
                           'outputs will be meaningless')
            return True
    return False


def model_from_checkpoint(ckpt, source, cfg=None, prepare=None):
    """The model a loaded checkpoint holds: built from its cfg (or ``cfg``), ``prepare(model)``
    applied (quantize/loader.py replays quantization there), then its inference tensors."""
    if not (cfg or ckpt.get('cfg')):
        raise WeightsError(f'{source}: the checkpoint holds no cfg: give --cfg')
    model = Darknet(cfg or ckpt['cfg'])
    if prepare is not None:
        model = prepare(model)
    load_state_dict_checked(model, inference_state(ckpt), source)
    warn_if_not_finite(model, source)
    warn_if_unfinished_prune(ckpt, source)
    return model


def warn_if_unfinished_prune(ckpt, source):
    """A prune script writes its cfg, weights and .pt, then prune.json: a .pt of a prune run
    without that marker beside it comes from a run stopped before it finished (its evaluation
    and report are missing); say so where the set is next used."""
    path = Path(source)
    in_its_set = all(path.with_suffix(s).exists() for s in ('.cfg', '.weights'))
    if ckpt.get('prune') is not None and in_its_set and \
            not (path.parent / 'prune.json').exists():
        LOGGER.warning(f'WARNING: {source}: written by a prune run that did not finish (no '
                       'prune.json beside it): its report and checks are missing; prune again '
                       'to have them')
