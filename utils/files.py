"""Atomic file writes: a reader (or a killed run) never sees half a file under the final name.

Every output is written to a temporary file in the same folder, flushed to disk and renamed over
the final name; on any failure the temporary file is removed and the old file, if any, is intact.
"""
from __future__ import annotations

import contextlib
import fnmatch
import os
import sys
import tempfile
import time
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path):
    """A temporary path in ``path``'s folder to write to; renamed to ``path`` when the block ends
    without an exception, removed otherwise. For writers that want a file name (onnx.save,
    np.savez, matplotlib): they write the temporary name, the final name appears complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, 'rb+') as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        _pause_for_tests(path)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _pause_for_tests(path):
    """YOLO_PAUSE_BEFORE_RENAME=<file name pattern>: stop just before renaming a matching file,
    so that a test can kill the process at the worst moment (tests/test_bad_inputs.py)."""
    pattern = os.environ.get('YOLO_PAUSE_BEFORE_RENAME')
    if pattern and fnmatch.fnmatch(path.name, pattern):
        print(f'paused before renaming {path}', file=sys.stderr, flush=True)
        time.sleep(600)


def atomic_write_bytes(path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path, text: str) -> None:
    atomic_write_bytes(path, text.encode())
