"""The built-in drawn-shapes datasets: primitives (what both sets share), easy (data/shapes,
six classes), hard (data/shapes-hard, 24 classes with look-alikes, clutter and a long tail) and
writer (the dataset on disk, each split whole or absent). ``python3 data/make_shapes.py`` is the
command; utils/data_cfg.py runs it the first time a built-in .data file is used."""
from data.drawn.easy import CLASSES, draw_shape, make_image
from data.drawn.writer import generate

__all__ = ['CLASSES', 'draw_shape', 'generate', 'make_image']
