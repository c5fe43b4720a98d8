"""The toolkit's logger: plain lines on stderr, configured on first import of this module."""
import logging

LOGGER = logging.getLogger('yolo')
if not LOGGER.handlers:
    _handler = logging.StreamHandler()
    _handler.setFormatter(logging.Formatter('%(message)s'))
    LOGGER.addHandler(_handler)
    LOGGER.setLevel(logging.INFO)
    LOGGER.propagate = False
