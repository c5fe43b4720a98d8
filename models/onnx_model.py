"""An exported ONNX model behind the interface test.py and detect.py use: ``model(images)[0]``
gives the decoded (b, n, 5 + nc) tensor, so the same NMS and metrics score the deployed graph.

export.py's graphs give boxes as corners and scores = objectness x class probability; here they
go back to centre boxes, objectness = the best score and class probabilities = scores / that, so
NMS's confidences (objectness x class) are the scores again. A graph with a fixed batch size
runs one image at a time.
"""
from __future__ import annotations

import numpy as np
import torch

from models.weights import WeightsError
from utils.boxes import xyxy2xywh
from utils.errors import OptionError


class OnnxModel:
    def __init__(self, path, threads=0):
        try:
            import onnxruntime as ort  # noqa: PLC0415
        except ImportError:
            raise WeightsError(f'{path}: running ONNX models needs onnxruntime: '
                               'pip install onnxruntime') from None
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.path = str(path)
        try:
            self.session = ort.InferenceSession(self.path, options,
                                                providers=['CPUExecutionProvider'])
        except Exception as e:  # onnxruntime raises its own types for unreadable graphs
            first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            raise WeightsError(f'{path}: onnxruntime cannot load it ({first})') from None
        inp = self.session.get_inputs()[0]
        self.input_name, self.input_shape = inp.name, inp.shape
        fixed = self.input_shape[2:]
        # the size the graph was exported at, or None for a dynamic graph (any size)
        self.img_size = tuple(fixed) if all(isinstance(s, int) for s in fixed) else None
        names = [o.name for o in self.session.get_outputs()]
        if names[:2] != ['boxes', 'scores']:
            raise WeightsError(f'{path}: expected outputs boxes, scores (an export.py graph), '
                               f'got {names}')
        self.nc = self.session.get_outputs()[1].shape[-1]
        if not isinstance(self.nc, int):  # a dynamic graph may not say: run it once
            dims = [d if isinstance(d, int) else 64 for d in self.input_shape[1:]]
            dims[0] = self.input_shape[1] if isinstance(self.input_shape[1], int) else 3
            x = np.zeros((1, *dims), np.float32)
            self.nc = self.session.run(None, {self.input_name: x})[1].shape[-1]

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
        self.check_size(*images.shape[2:])
        x = images.detach().cpu().float().numpy()
        step = self.input_shape[0] if isinstance(self.input_shape[0], int) else len(x)
        parts = [self.session.run(None, {self.input_name: x[i:i + step]})
                 for i in range(0, len(x), step)]
        boxes = torch.from_numpy(np.concatenate([p[0] for p in parts]))
        scores = torch.from_numpy(np.concatenate([p[1] for p in parts]))
        obj = scores.amax(-1, keepdim=True)  # so NMS's objectness pre-filter still prunes
        return torch.cat((xyxy2xywh(boxes), obj, scores / obj.clamp(min=1e-12)), -1), None
