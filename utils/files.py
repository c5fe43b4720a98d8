"""Atomic file writes: a reader (or a killed run) never sees half a file under the final name.

Every output is written to a temporary file in the same folder, flushed to disk and renamed over
the final name; on any failure the temporary file is removed and the old file, if any, is intact.
"""
from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import tempfile
from pathlib import Path

from utils.errors import ToolkitError


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
    _remove_orphans(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.tmp{os.getpid()}.', suffix=path.suffix,
                                   dir=path.parent)
    except OSError as e:  # name the file asked for, not the temporary one
        raise OSError(e.errno, e.strerror, str(path)) from e
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, 'rb+') as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except OSError as e:
        if e.filename not in (None, tmp):
            raise
        # name the file the user asked for, not the hidden temporary one
        raise OSError(e.errno, e.strerror or f'write failed ({e})', str(path)) from e
    finally:
        Path(tmp).unlink(missing_ok=True)


_TEMPORARY = re.compile(r'^\..+\.tmp(\d+)\.\w{8}')  # .<name>.tmp<pid>.<mkstemp's 8 characters>
_swept = set()


def _remove_orphans(folder):
    """Temporary files that killed writers left in ``folder`` (the pid in the name is gone);
    those of live writers stay. Once per folder and process: a folder of many outputs is
    listed once, not once per file."""
    if folder in _swept:
        return
    _swept.add(folder)
    for entry in os.scandir(folder):
        found = _TEMPORARY.match(entry.name)
        if found and not _alive(int(found.group(1))):
            if entry.is_dir(follow_symlinks=False):  # a writer's scratch folder
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                Path(entry.path).unlink(missing_ok=True)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


@contextlib.contextmanager
def whole_or_none(paths):
    """Outputs written together: when the block fails (or is interrupted), those of ``paths`` it
    created or replaced are removed, so no partial set stays under the final names."""
    def stamp(p):
        return p.stat().st_mtime_ns if p.exists() else None
    paths = [Path(p) for p in paths]
    before = [stamp(p) for p in paths]
    try:
        yield
    except BaseException:
        for p, old in zip(paths, before):
            if p.exists() and stamp(p) != old:
                shutil.rmtree(p) if p.is_dir() else p.unlink()
        raise


def check_writable(folder) -> None:
    """Fail now, not after the work, when ``folder`` cannot take new files (read-only, full)."""
    try:
        fd, probe = tempfile.mkstemp(prefix='.write-test.', dir=folder)
    except OSError as e:
        raise OSError(e.errno, f'{e.strerror} (the output folder must be writable)',
                      str(folder)) from e
    os.close(fd)
    os.unlink(probe)


def check_room(folder, nbytes: int, what: str) -> None:
    """Fail before the work when ``folder``'s disk cannot hold ``nbytes`` more (``what`` says
    which files the estimate is for)."""
    free = shutil.disk_usage(folder).free
    if free < nbytes:
        raise ToolkitError(f'{folder}: {free / 1e6:.1f} MB free on its disk, {what} need about '
                           f'{nbytes / 1e6:.1f} MB: free some space or give another --project')


def atomic_write_bytes(path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def write_image(path, image) -> None:
    """An image file in the format its suffix names, atomically; cv2.imwrite alone reports a
    failed write (a full disk) only as a False nobody reads."""
    import cv2  # here, so that utils.files stays importable without OpenCV
    ok, encoded = cv2.imencode(Path(path).suffix or '.jpg', image)
    if not ok:
        raise ToolkitError(f'{path}: OpenCV cannot write {Path(path).suffix or "this"} images')
    atomic_write_bytes(path, encoded.tobytes())


def glob_files(pattern) -> list[Path]:
    """The paths a glob pattern matches, sorted, each file once: '**' recurses through real
    folders only (glob.glob follows a link to '.' or '..' round and round), and two paths to
    one file (through links) count once."""
    parts = Path(pattern).parts
    k = next((i for i, part in enumerate(parts) if glob.has_magic(part)), len(parts))
    base = Path(*parts[:k]) if k else Path('.')
    if k == len(parts):
        return [base] if base.exists() else []
    seen, out = set(), []
    for p in sorted(base.glob(str(Path(*parts[k:])))):
        real = os.path.realpath(p)
        if real not in seen:
            seen.add(real)
            out.append(p)
    return out
