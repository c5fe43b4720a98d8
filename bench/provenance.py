"""Where a bench's figures came from: the commit (and whether the tree had local changes), the
machine (CPU model, the instruction sets that pick int8 and bf16 kernels, cores, GPU) and the
date. Every bench writes it into its JSON and prints it under its tables, so a figure copied
into docs/results can name its commit."""
from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
from pathlib import Path

import torch

from utils.files import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
# the CPU flags that change which kernels the runtimes pick (int8 dot products, bf16, AMX)
FLAGS = ('avx2', 'avx512f', 'avx512_vnni', 'avx_vnni', 'avx512_bf16', 'amx_tile', 'amx_int8')


def _git(*args):
    try:
        out = subprocess.run(['git', *args], cwd=ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def cpu():
    """(model name, the FLAGS it has) from /proc/cpuinfo; platform's names elsewhere."""
    try:
        info = Path('/proc/cpuinfo').read_text()
    except OSError:
        return platform.processor() or platform.machine(), []
    fields = dict(line.split(':', 1) for line in info.splitlines()[:40] if ':' in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    have = set(fields.get('flags', '').split())
    return fields.get('model name', platform.machine()), [f for f in FLAGS if f in have]


def provenance():
    """The commit, machine and date of a run, as plain JSON types."""
    model, flags = cpu()
    commit = _git('rev-parse', 'HEAD')
    status = _git('status', '--porcelain', '--untracked-files=no')
    return {'commit': commit, 'local_changes': bool(status) if status is not None else None,
            'machine': {'cpu': model, 'flags': flags, 'cores': len(os.sched_getaffinity(0))
                        if hasattr(os, 'sched_getaffinity') else os.cpu_count(),
                        'gpu': torch.cuda.get_device_name(0) if torch.cuda.is_available()
                        else None, 'torch': torch.__version__},
            'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}


def caption(stamp=None):
    """One line to print under a table: 'commit 1a2b3c4 (+ local changes) · CPU, flags, cores'."""
    stamp = stamp or provenance()
    m = stamp['machine']
    commit = (stamp['commit'] or 'unknown')[:7] + (' (+ local changes)' if
                                                    stamp['local_changes'] else '')
    where = m['gpu'] or f"{m['cpu']} ({', '.join(m['flags']) or 'no AVX2'}), {m['cores']} cores"
    return f"commit {commit} · {where} · {stamp['date'][:10]}"


def write_result(path, result):
    """Write a bench's result JSON with its provenance, whole or not at all; print the caption;
    returns the provenance."""
    stamp = provenance()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps({**result, 'provenance': stamp}, indent=2))
    print(caption(stamp))
    return stamp
