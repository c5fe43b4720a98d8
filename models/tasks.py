"""Whether a dataset feeds what a network learns: as many detection classes as its [yolo]
layers predict, masks with as many classes as its segmentation head labels."""
from __future__ import annotations

from models.weights import WeightsError


def check_tasks(model, where, data, nc, seg_names=None):
    """WeightsError naming ``where`` (the cfg or weights) and ``data`` (the .data file) when the
    dataset's classes or masks do not match the model's heads."""
    if model.yolo_layers and model.nc != nc:
        raise WeightsError(f'{where}: the model detects {model.nc} classes, {data} has {nc}')
    if model.seg_layers and len(seg_names or []) != model.seg_nc:
        have = f'{len(seg_names)} segmentation classes' if seg_names else 'no masks'
        raise WeightsError(f'{where}: the model segments {model.seg_nc} classes, {data} has '
                           f'{have} (seg_classes= and seg_names= in the .data)')
