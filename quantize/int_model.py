"""An integer model (quantize/export_int.py's npz + json) behind the interface test.py and
detect.py use: ``model(images)`` runs quantize/int_runtime.py and gives the decoded detections,
so the same NMS and metrics (and mIoU) score what a fixed-point device computes.

The head integers are dequantized ((q - zero_point) * scale) and decoded by the cfg's own
[yolo] layers: the decoding is float on every target, after the integer network.
"""
from __future__ import annotations

import numpy as np
import torch

from models.darknet import Darknet
from quantize import int_runtime


def output_params(manifest, j):
    """The scale and zero point of layer j's output (through pass-throughs and routes)."""
    layers = manifest['layers']
    while 'out' not in layers[j]:
        e = layers[j]
        j = e['from'][0] if e['type'] == 'route' else j - 1
    return layers[j]['out']


class IntModel:
    def __init__(self, path):
        self.path = str(path)
        self.manifest, self.arrays = int_runtime.load(path)
        self.darknet = Darknet(self.manifest['cfg']).eval()
        self.img_size = self.darknet.img_size
        self.nc, self.seg_nc = self.darknet.nc, self.darknet.seg_nc
        self.blocks, self.seg_layers = self.darknet.blocks, self.darknet.seg_layers  # colormap=
        self.head_inputs = [(e['index'], e['from']) for e in self.manifest['layers']
                            if e['type'] in ('yolo', 'seg')]

    def eval(self):
        return self

    def to(self, *_):
        return self

    def integers(self, images, keep_all=False):
        """Float images in [0, 1] (as the loaders give them) -> int_runtime.run's outputs."""
        pixels = torch.round(images.detach().cpu().float() * 255).clamp(0, 255)
        return int_runtime.run(self.manifest, self.arrays, pixels.to(torch.uint8).numpy(),
                               keep_all)

    def heads(self, outs):
        """Every head's raw output in layer order, as Darknet.heads gives them."""
        heads = []
        for k, j in self.head_inputs:
            p = output_params(self.manifest, j)
            t = (outs[j] - p['zero_point']).astype(np.float32) * np.float32(p['scale'])
            heads.append(self.darknet.module_list[k](torch.from_numpy(t)))
        return heads

    def __call__(self, images):
        """(decoded detections or None, raw heads), as a Darknet in eval mode."""
        heads = self.heads(self.integers(images))
        decoded = self.darknet.decode(heads, images.shape[-2:]) if self.nc else None
        return decoded, heads

    def segment_classes(self, heads, size=None):
        return self.darknet.segment_classes(heads, size)
