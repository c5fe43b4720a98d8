"""The toolkit beside what users would pick instead or check it with: Torch-Pruning,
onnxruntime's and NNCF's PTQ (compare.py), pycocotools and OpenCV's darknet reader."""
