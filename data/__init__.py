"""Datasets and what describes them, one home each:

- ``*.data`` / ``*.names``: darknet's dataset files (classes=, train=, valid=, names=, and
  fetch= for the real sets), where users' commands point (``--data data/coco128.data``).
- ``hyp.*.yaml``: training hyperparameters (scratch, finetune, sparse, sparse24, qat, sgd).
- ``drawn/``: the built-in drawn-shapes generators (primitives, easy, hard, writer);
  ``make_shapes.py`` is their command, run by itself the first time a built-in .data is used.
- ``fetch.py`` and ``real.sha256``: the real files (COCO128, CamVid, pretrained releases),
  downloaded or copied into datasets/ and weights/, checked against pinned sums.
- converters to YOLO labels: ``coco2yolo.py``, ``voc2yolo.py``; ``kmeans_anchors.py``: anchors
  for a dataset.
"""
