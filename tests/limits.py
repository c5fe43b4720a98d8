"""Conditions a test imposes on this process: a read-only folder that holds even for root, and a
disk that fills up. Both are real kernel refusals, not patched Python calls."""
import contextlib
import ctypes
import os
import resource

# root ignores file modes through these capabilities; dropping them from the effective set (and
# raising them again after) makes a read-only folder read-only for this process
_OVERRIDES = (1 << 1) | (1 << 2) | (1 << 3)  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER
_CAPS_VERSION_3 = 0x20080522


class _Header(ctypes.Structure):
    _fields_ = [('version', ctypes.c_uint32), ('pid', ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [('effective', ctypes.c_uint32), ('permitted', ctypes.c_uint32),
                ('inheritable', ctypes.c_uint32)]


def _capabilities(change=None):
    libc = ctypes.CDLL(None, use_errno=True)
    header, data = _Header(_CAPS_VERSION_3, 0), (_Data * 2)()
    if libc.capget(ctypes.byref(header), data):
        raise OSError(ctypes.get_errno(), 'capget')
    old = data[0].effective
    if change is not None:
        data[0].effective = change(old)
        if libc.capset(ctypes.byref(header), data):
            raise OSError(ctypes.get_errno(), 'capset')
    return old


@contextlib.contextmanager
def read_only(*folders):
    """The folders are read-only (mode 555) for this process while the block runs."""
    modes = [f.stat().st_mode for f in folders]
    for f in folders:
        f.chmod(0o555)
    root = os.geteuid() == 0
    if root:
        _capabilities(lambda caps: caps & ~_OVERRIDES)
    try:
        yield
    finally:
        if root:
            _capabilities(lambda caps: caps | _OVERRIDES)
        for f, mode in zip(folders, modes):
            f.chmod(mode)


@contextlib.contextmanager
def disk_full_after(nbytes):
    """Writes that take a file past ``nbytes`` fail (EFBIG, 'File too large'), as a disk that
    fills up fails them (ENOSPC): RLIMIT_FSIZE, whose signal Python ignores."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
