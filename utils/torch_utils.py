"""Device selection and timing that work the same on CPU and CUDA."""
import copy
import math
import os
import time

import torch
import torch.distributed as dist

from utils.errors import ToolkitError
from utils.log import LOGGER


class DeviceError(ToolkitError, ValueError):
    """A --device that this machine cannot provide."""


def select_device(device='') -> torch.device:
    """'' -> CUDA 0 when available else CPU; 'cpu'; '0' or 'cuda:0' -> that GPU."""
    device = str(device).strip().lower()
    if device in ('', 'auto'):
        return torch.device('cuda:0' if torch.cuda.is_available() else 'cpu')
    if device == 'cpu':
        return torch.device('cpu')
    index = device.split(':')[-1].split(',')[0]
    if not torch.cuda.is_available():
        raise DeviceError(f"--device {device}: CUDA is not available here; use --device cpu")
    return torch.device(f'cuda:{int(index)}')


def cpu_has_bf16():
    """Whether this CPU has bf16 instructions (AVX-512 bf16 or AMX). oneDNN's own check also
    says yes on plain AVX-512, where it emulates bf16 and a conv ran 2.7x slower than in fp32
    (a Xeon with AVX-512 VNNI, 2026-12-07)."""
    if not torch.backends.mkldnn.is_available():
        return False
    cpu = torch.cpu
    return bool(getattr(cpu, '_is_avx512_bf16_supported', lambda: False)()
                or getattr(cpu, '_is_amx_tile_supported', lambda: False)())


def inference_dtype(device, amp=None):
    """The autocast dtype a float model runs in (None: fp32). amp None: fp16 on CUDA, bf16 on
    CPUs that have it, else fp32; False: fp32; True: fp16 on CUDA, bf16 on any CPU (emulated
    without bf16 instructions: slow, but it shows the mAP effect)."""
    if amp is False:
        return None
    if device.type == 'cuda':
        return torch.float16
    if cpu_has_bf16():
        return torch.bfloat16
    if amp is None:
        return None
    LOGGER.warning('WARNING: --amp: this CPU has no bf16 instructions; bf16 is emulated and '
                   'runs many times slower than fp32')
    return torch.bfloat16


def amp_settings(device, enabled):
    """(autocast dtype or None, GradScaler needed): fp16 + scaler on CUDA, bf16 on capable CPUs."""
    dtype = inference_dtype(device, None if enabled else False)
    if enabled and dtype is None:
        LOGGER.info('mixed precision: this CPU has no bf16 instructions; training in fp32')
    return dtype, dtype == torch.float16


def autocast(device, dtype):
    """torch.autocast to ``dtype`` on ``device``'s kind, or nothing when dtype is None."""
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


def time_sync() -> float:
    """Wall time after all queued GPU work has finished."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter()


def time_runs(fn, runs, warmup) -> list[float]:
    """Milliseconds of each of ``runs`` calls of fn after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time_sync()
        fn()
        times.append(1000 * (time_sync() - t0))
    return times


def unwrap(model):
    """The module inside a DistributedDataParallel wrapper, or the model itself."""
    return model.module if hasattr(model, 'module') else model


class ModelEMA:
    """Exponential moving average of weights (and BN statistics); the EMA is what gets evaluated
    and saved. The decay ramps up from 0 so early, fast-changing weights are not averaged in."""

    def __init__(self, model, decay=0.9999, tau=2000, updates=0):
        self.ema = copy.deepcopy(unwrap(model)).eval()
        self.updates, self.decay, self.tau = updates, decay, tau
        for p in self.ema.parameters():
            p.requires_grad_(False)

    def update(self, model):
        self.updates += 1
        d = self.decay * (1 - math.exp(-self.updates / self.tau))
        with torch.no_grad():
            current = unwrap(model).state_dict()
            for k, v in self.ema.state_dict().items():
                if v.dtype.is_floating_point:
                    v.mul_(d).add_(current[k].detach(), alpha=1 - d)
                else:  # counters (BN batches, quantizer observations) are taken as they are
                    v.copy_(current[k])


def param_groups(model):
    """Three groups: conv/linear weights (weight decay), BN weights and biases (no decay)."""
    decay, no_decay_bn, bias = [], [], []
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if name == 'bias':
                bias.append(p)
            elif isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                no_decay_bn.append(p)
            else:
                decay.append(p)
    return decay, no_decay_bn, bias


def setup_distributed():
    """(rank, world size, local rank) from torchrun's environment; one process: (0, 1, -1)."""
    world = int(os.environ.get('WORLD_SIZE', '1'))
    if world == 1:
        return 0, 1, -1
    local = int(os.environ['LOCAL_RANK'])
    backend = 'nccl' if torch.cuda.is_available() else 'gloo'
    if backend == 'nccl':
        torch.cuda.set_device(local)
    dist.init_process_group(backend)
    return dist.get_rank(), world, local
