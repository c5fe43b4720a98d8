"""Device selection and timing that work the same on CPU and CUDA."""
import time

import torch


class DeviceError(ValueError):
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


def time_sync() -> float:
    """Wall time after all queued GPU work has finished."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter()
