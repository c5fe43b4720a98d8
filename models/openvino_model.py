"""An OpenVINO IR (export.py --format openvino: <stem>.xml beside its .bin) behind the interface
test.py and detect.py use (models/onnx_model.GraphModel), run by OpenVINO on the CPU.

Float layers run in fp32 even on CPUs with bf16, where OpenVINO would otherwise pick bf16 for
them: the IR is to give onnxruntime's boxes. An int8 IR (from a Q/DQ graph) runs int8 kernels.
"""
from __future__ import annotations

import numpy as np

from models.onnx_model import GraphModel
from models.weights import WeightsError


def _dims(partial_shape):
    return [d.get_length() if d.is_static else None for d in partial_shape]


class OpenVinoModel(GraphModel):
    runtime = 'OpenVINO'

    def _open(self, threads):
        try:
            import openvino as ov  # optional dependency
        except ImportError:
            raise WeightsError(f'{self.path}: running an OpenVINO IR needs openvino: '
                               'pip install openvino') from None
        config = {'INFERENCE_PRECISION_HINT': 'f32', 'PERFORMANCE_HINT': 'LATENCY'}
        if threads:
            config['INFERENCE_NUM_THREADS'] = threads
        try:
            self.compiled = ov.Core().compile_model(self.path, 'CPU', config)
        except Exception as e:  # OpenVINO raises RuntimeError with its own text
            raise self._cannot_load(e) from None
        self.request = self.compiled.create_infer_request()
        names = [o.get_any_name() for o in self.compiled.outputs]
        return _dims(self.compiled.input(0).get_partial_shape()), names

    def _declared_shapes(self):
        return {o.get_any_name(): _dims(o.get_partial_shape()) for o in self.compiled.outputs}

    def raw(self, x):
        out = self.request.infer({0: np.ascontiguousarray(x)})
        # copies: the next call writes into the same output buffers
        return [np.array(out[o]) for o in self.compiled.outputs]
