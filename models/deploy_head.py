"""The deployable head of a network: what every exported graph computes from images."""
from __future__ import annotations

import torch
from torch import nn


def output_names(model):
    """The graph's outputs: boxes and scores for [yolo] heads, seg for a segmentation head."""
    return (['boxes', 'scores'] if model.yolo_layers else []) + \
        (['seg'] if model.seg_layers else [])


class DeployHead(nn.Module):
    """The network with its outputs in the form deployment code reads: corner boxes and scores,
    the heads decoded at once (Darknet.decode_parts) so the graph's tail is a dozen nodes; and
    the segmentation head's logits (b, classes, h, w) at its own output stride: argmax over the
    classes is the mask (softmax of them darknet's probabilities)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, images):
        heads = self.model.heads(images)
        out = ()
        if self.model.yolo_layers:
            xy, g, wh_gain, obj, cls = self.model.decode_parts(heads, images.shape[-2:])
            half = g * (wh_gain / 2)
            # corners by concatenation: xywh2xyxy's in-place column writes export as four
            # ScatterND nodes, which onnxruntime runs slowly
            out = (torch.cat((xy - half, xy + half), -1), cls * obj)
        if self.model.seg_layers:
            out = out + (self.model.seg_logits(heads),)
        return out
