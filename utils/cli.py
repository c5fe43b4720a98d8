"""Shared command-line behaviour: every failure is one line on stderr and a non-zero exit code.

- The toolkit's own errors (utils/errors.py: bad cfg, weights, data, options, ...) print their
  message, which names the file, line or flag; exit code 1 (2 for usage errors).
- An OS error (a read-only folder, a full disk, a missing file) prints what and where.
- Ctrl-C prints one line (exit 130); checkpoints and outputs are written atomically, so what was
  there before is intact and a training run resumes with --resume.
- Anything else is a bug: one line saying so and the file where the full traceback went.
  ``--debug`` on the command line or YOLO_DEBUG=1 in the environment shows tracebacks instead.
"""
import functools
import os
import sys
import tempfile
import traceback

from utils.errors import ToolkitError


def _debug(argv):
    args = sys.argv[1:] if argv is None else argv
    return '--debug' in args or os.environ.get('YOLO_DEBUG', '') not in ('', '0')


def _without_debug(argv):
    if argv is None:
        sys.argv = [a for a in sys.argv if a != '--debug']
        return None
    return [a for a in argv if a != '--debug']


def _os_error(e: OSError) -> str:
    where = f': {e.filename}' if e.filename else ''
    return f'{e.strerror or type(e).__name__}{where}'


def _report_bug(e: BaseException) -> str:
    fd, path = tempfile.mkstemp(prefix='yolo-traceback-', suffix='.txt')
    with os.fdopen(fd, 'w') as f:
        f.write(''.join(traceback.format_exception(e)))
    return (f'internal error: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ""} '
            f'(a bug: please report it with the traceback in {path}; --debug shows it)')


def friendly_errors(main):
    @functools.wraps(main)
    def wrapper(argv=None, *args, **kwargs):
        debug = _debug(argv)
        argv = _without_debug(argv)
        try:
            return main(argv, *args, **kwargs)
        except ToolkitError as e:
            if debug:
                raise
            print(f'error: {e}', file=sys.stderr)
            sys.exit(e.exit_code)
        except KeyboardInterrupt:
            print('interrupted', file=sys.stderr)
            sys.exit(130)
        except OSError as e:
            if debug:
                raise
            print(f'error: {_os_error(e)}', file=sys.stderr)
            sys.exit(1)
        except Exception as e:  # noqa: BLE001 (the last resort: one line, traceback to a file)
            if debug:
                raise
            print(_report_bug(e), file=sys.stderr)
            sys.exit(1)
    return wrapper
