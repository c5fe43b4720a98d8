"""The toolkit's own errors: one base type, so every command catches one thing and prints one line.

A ToolkitError means the input (a file, a flag, a combination) is wrong or the job cannot be done
here; its message names the file (and line) or the flag and says what would work. The domain
errors (CfgError, WeightsError, DataError, PruneError, ...) derive from it where they are defined.
Anything else that escapes a command is a bug: utils/cli.py reports it as one line too and writes
the traceback to a file.
"""


class ToolkitError(Exception):
    """Base of every error the toolkit raises on purpose; ``exit_code`` is what the CLI returns."""
    exit_code = 1


class OptionError(ToolkitError, ValueError):
    """A bad flag, option value or combination of options (a usage error, exit code 2)."""
    exit_code = 2
