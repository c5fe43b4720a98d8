"""export.py --format ncnn: the toolkit's ONNX graph (decoded boxes and scores, as
quantize/graphs.py writes it) converted by pnnx into an ncnn ``.param`` + ``.bin``, with the
blob names and the input size written back so that test.py and detect.py can run it
(models/ncnn_model.py). Weights stay fp32 unless --half (fp16 storage, ncnn's usual).

A quantized checkpoint is refused: ncnn's int8 path takes a calibration table of its own, and
writing one from the toolkit's scales is not done yet.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from models.darknet import is_quantized
from quantize.graphs import ExportError, export_onnx
from utils.files import atomic_path, atomic_write_text


def pnnx_command():
    try:
        import pnnx
    except ImportError:
        raise ExportError('--format ncnn converts with pnnx: pip install pnnx ncnn') from None
    return pnnx.EXEC_PATH


def renamed(param_text, outputs, img_hw, channels=3):
    """pnnx's blob names (in0, out0, ...) as the ONNX graph's (images, boxes, scores, seg),
    and the input's size in the Input layer (0=w 1=h 2=c)."""
    names = {'in0': 'images', **{f'out{k}': name for k, name in enumerate(outputs)}}
    text = re.sub(r'\b(in0|out\d+)\b', lambda m: names.get(m.group(1), m.group(1)), param_text)
    h, w = img_hw
    return re.sub(r'^(Input\s+\S+\s+0 1 images)\s*$', rf'\1 0={w} 1={h} 2={channels}', text,
                  count=1, flags=re.M)


def export_ncnn(model, stem, img_hw, half=False):
    """Write <stem>.ncnn.param and <stem>.ncnn.bin; returns their paths."""
    if is_quantized(model):
        raise ExportError('--format ncnn writes float graphs here: export the float checkpoint '
                          '(an int8 ncnn model from the toolkit\'s scales is not written yet)')
    exe = pnnx_command()
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = export_onnx(model.float(), Path(tmp) / 'model', img_hw)[0]
        import onnx
        outputs = [o.name for o in onnx.load(onnx_path).graph.output]
        h, w = img_hw
        r = subprocess.run([exe, onnx_path, f'inputshape=[1,3,{h},{w}]', f'fp16={int(half)}',
                            f'ncnnparam={tmp}/m.param', f'ncnnbin={tmp}/m.bin',
                            f'pnnxparam={tmp}/p.param', f'pnnxbin={tmp}/p.bin',
                            f'pnnxpy={tmp}/p.py', f'pnnxonnx={tmp}/p.onnx',
                            f'ncnnpy={tmp}/n.py'], cwd=tmp, capture_output=True, text=True)
        if r.returncode or not Path(f'{tmp}/m.param').is_file():
            last = (r.stderr.strip() or r.stdout.strip() or 'no output').splitlines()[-1]
            raise ExportError(f'pnnx could not convert the graph to ncnn ({last[:200]})')
        param, weights = f'{stem}.ncnn.param', f'{stem}.ncnn.bin'
        with atomic_path(weights) as part:
            shutil.copyfile(f'{tmp}/m.bin', part)
        atomic_write_text(param, renamed(Path(f'{tmp}/m.param').read_text(), outputs, img_hw))
    return [param, weights]
