"""Benchmarks: command lines that print figures and write JSON stamped with the commit and
machine they ran on (bench/provenance.py). Nothing outside bench/ and tests/ imports them.

- speed/: how fast (inference latency per backend, evaluation, a training step, the integer
  runtime, 2:4 GEMMs on a GPU, and the lent-GPU session script).
- peers/: the toolkit beside what users would pick instead or check it with (Torch-Pruning,
  onnxruntime's and NNCF's PTQ, pycocotools, OpenCV's darknet reader).
- experiments/: what a choice costs or buys (prune methods, quantization schemes, PTQ of real
  models, distillation, the multi-task network).

Each module's docstring names the question it answers and the docs/results page it feeds.
"""
