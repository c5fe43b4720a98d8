"""Run a script, stopping it just before it renames a finished output into place, so that
tests/test_kills.py can SIGKILL it at the worst moment:

    python3 tests/pause_at_rename.py PATTERN[:N] SCRIPT [ARGS...]

The N-th (default first) os.replace / os.rename whose destination's file name matches PATTERN
(fnmatch) prints 'paused before renaming <path>' on stderr and sleeps. The seam is the rename
itself, so the toolkit carries no test hook."""
import fnmatch
import os
import runpy
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def pausing(rename, pattern, nth, seen):
    def wrapped(src, dst, *args, **kw):
        if fnmatch.fnmatch(Path(dst).name, pattern):
            seen.append(dst)
            if len(seen) == nth:
                print(f'paused before renaming {dst}', file=sys.stderr, flush=True)
                time.sleep(600)
        return rename(src, dst, *args, **kw)
    return wrapped


def main():
    pattern, _, nth = sys.argv[1].partition(':')
    seen = []
    os.replace = pausing(os.replace, pattern, int(nth or 1), seen)
    os.rename = pausing(os.rename, pattern, int(nth or 1), seen)
    script = sys.argv[2]
    sys.argv = sys.argv[2:]
    sys.path.insert(0, str(ROOT))  # as `python3 SCRIPT` from the root would have it
    runpy.run_path(str(ROOT / script), run_name='__main__')


if __name__ == '__main__':
    main()
