"""An ncnn model (export.py --format ncnn: <stem>.ncnn.param beside its .ncnn.bin) behind the
interface test.py and detect.py use (models/onnx_model.GraphModel), run by ncnn on the CPU, one
image at a time. The .param names its blobs as the ONNX graph did (images, boxes, scores, seg)
and its Input layer states the size (export/ncnn.py writes both)."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from models.onnx_model import GraphModel
from models.weights import WeightsError

OUTPUTS = ('boxes', 'scores', 'seg')


class NcnnModel(GraphModel):
    runtime = 'ncnn'

    def _open(self, threads):
        try:
            import ncnn  # optional dependency
        except ImportError:
            raise WeightsError(f'{self.path}: running an ncnn model needs ncnn: '
                               'pip install ncnn') from None
        text = Path(self.path).read_text(errors='replace')
        size = re.search(r'^Input\s+\S+\s+0 1 images 0=(\d+) 1=(\d+) 2=(\d+)', text, re.M)
        if not size:
            raise WeightsError(f'{self.path}: no Input layer named images with its size (an '
                               'export.py --format ncnn model)')
        w, h, c = map(int, size.groups())
        bin_path = self.path[:-len('.param')] + '.bin'
        self.net = ncnn.Net()
        self.net.opt.use_vulkan_compute = False
        if threads:
            self.net.opt.num_threads = threads
        if self.net.load_param(self.path) or self.net.load_model(bin_path):
            raise WeightsError(f'{self.path}: ncnn cannot load it (or its {Path(bin_path).name})')
        names = [n for n in OUTPUTS if re.search(rf'\s{n}(\s|$)', text, re.M)]
        self.ncnn = ncnn
        return [1, c, h, w], names

    def _declared_shapes(self):
        return {n: [None] * 3 for n in self.names}  # a .param states none: run it once

    def raw(self, x):
        # ncnn.Mat wraps the array's memory without a copy: the array must outlive the
        # extraction (a temporary copy would be freed under it)
        image = np.ascontiguousarray(x[0], dtype=np.float32)
        mat = self.ncnn.Mat(image)
        ex = self.net.create_extractor()
        ex.input('images', mat)
        outs = []
        for name in self.names:
            ret, mat = ex.extract(name)
            if ret:
                raise WeightsError(f'{self.path}: ncnn could not compute {name}')
            outs.append(np.array(mat)[None])  # copies; the batch dimension back
        return outs
