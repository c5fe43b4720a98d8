"""An exported ONNX model behind the interface test.py and detect.py use: ``model(images)`` gives
the decoded (b, n, 5 + nc) detections (and the seg logits), so the same NMS and metrics score
the deployed graph.

export.py's graphs give boxes as corners and scores = objectness x class probability; here they
go back to centre boxes, objectness = the best score and class probabilities = scores / that, so
NMS's confidences (objectness x class) are the scores again. A graph with a fixed batch size
runs one image at a time.
"""
from __future__ import annotations

import numpy as np
import torch

from models.layers import class_map
from models.weights import WeightsError
from utils.boxes import xyxy2xywh
from utils.errors import OptionError


class GraphModel:
    """What an exported graph's runtime shares: the checks on its inputs and outputs and the
    decoding back to the Darknet interface. A subclass opens the graph (``_open``: input shape,
    output names) and runs it (``raw``: a float32 array in, the outputs in ``names`` order)."""

    runtime = ''

    def __init__(self, path, threads=0):
        self.path = str(path)
        self.input_shape, self.names = self._open(threads)
        fixed = self.input_shape[2:]
        # the size the graph was exported at, or None for a dynamic graph (any size)
        self.img_size = tuple(fixed) if all(isinstance(s, int) for s in fixed) else None
        known = {'boxes', 'scores', 'seg', 'selected'}
        if not set(self.names) <= known or ('boxes' in self.names) != ('scores' in self.names) \
                or not ({'boxes', 'seg'} & set(self.names)):
            raise WeightsError(f'{path}: expected outputs boxes, scores and/or seg (an export.py '
                               f'graph), got {self.names}')
        shapes = self._output_shapes()
        self.nc = shapes['scores'][-1] if 'scores' in shapes else 0
        self.seg_nc = shapes['seg'][1] if 'seg' in shapes else 0

    def _open(self, threads):
        raise NotImplementedError

    def raw(self, x):
        raise NotImplementedError

    def _declared_shapes(self):
        raise NotImplementedError

    def _cannot_load(self, e):
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        return WeightsError(f'{self.path}: {self.runtime} cannot load it ({first})')

    def _output_shapes(self):
        """Output shapes; a dynamic graph may not state its class counts: run it once."""
        shapes = self._declared_shapes()
        if all(isinstance(v[1], int) for k, v in shapes.items() if k == 'seg') and \
                all(isinstance(v[-1], int) for k, v in shapes.items() if k == 'scores'):
            return shapes
        dims = [d if isinstance(d, int) else 64 for d in self.input_shape[1:]]
        dims[0] = self.input_shape[1] if isinstance(self.input_shape[1], int) else 3
        outs = self.raw(np.zeros((1, *dims), np.float32))
        return {n: o.shape for n, o in zip(self.names, outs)}

    def eval(self):
        return self

    def to(self, *_):
        return self

    def check_size(self, h, w):
        fixed = self.input_shape[2:]
        if all(isinstance(s, int) for s in fixed) and tuple(fixed) != (h, w):
            raise OptionError(f'{self.path}: the graph takes {fixed[0]}x{fixed[1]} images, got '
                              f'{h}x{w}; use --img-size {fixed[0]} or export with --dynamic')

    def __call__(self, images):
        """(decoded detections or None, {'seg': logits} or None), as a Darknet in eval mode."""
        self.check_size(*images.shape[2:])
        x = images.detach().cpu().float().numpy()
        step = self.input_shape[0] if isinstance(self.input_shape[0], int) else len(x)
        parts = [dict(zip(self.names, self.raw(x[i:i + step]))) for i in range(0, len(x), step)]
        outs = {k: torch.from_numpy(np.concatenate([p[k] for p in parts]))
                for k in self.names if k != 'selected'}
        decoded = None
        if 'boxes' in outs:
            scores = outs['scores']
            obj = scores.amax(-1, keepdim=True)  # so NMS's objectness pre-filter still prunes
            decoded = torch.cat((xyxy2xywh(outs['boxes']), obj,
                                 scores / obj.clamp(min=1e-12)), -1)
        return decoded, ({'seg': outs['seg']} if 'seg' in outs else None)

    def segment_classes(self, heads, size=None):
        """The class of every pixel from the graph's seg logits, as Darknet.segment_classes."""
        return class_map(heads['seg'], size)


class OnnxModel(GraphModel):
    """An exported .onnx graph run by onnxruntime on the CPU."""

    runtime = 'onnxruntime'

    def _open(self, threads):
        try:
            import onnxruntime as ort
        except ImportError:
            raise WeightsError(f'{self.path}: running ONNX models needs onnxruntime: '
                               'pip install onnxruntime') from None
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(self.path, options,
                                                providers=['CPUExecutionProvider'])
        except Exception as e:  # onnxruntime raises its own types for unreadable graphs
            raise self._cannot_load(e) from None
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        return inp.shape, [o.name for o in self.session.get_outputs()]

    def _declared_shapes(self):
        return {o.name: o.shape for o in self.session.get_outputs()}

    def raw(self, x):
        return self.session.run(None, {self.input_name: x})
