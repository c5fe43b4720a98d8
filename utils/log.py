"""The toolkit's logger: plain lines on stderr, configured on first import of this module."""
import logging
import sys


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (tests and tools may swap it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _):
        pass


LOGGER = logging.getLogger('yolo')
if not LOGGER.handlers:
    _handler = _StderrHandler()
    _handler.setFormatter(logging.Formatter('%(message)s'))
    LOGGER.addHandler(_handler)
    LOGGER.setLevel(logging.INFO)
    LOGGER.propagate = False
