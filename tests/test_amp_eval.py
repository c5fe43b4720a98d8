"""Reduced-precision evaluation (test.py --amp): which dtype runs where, fp32 decoding, and the
mAP it gives against fp32."""
from pathlib import Path

import pytest
import torch

import test as evaluation
from models.darknet import Darknet
from quantize.loader import autocast_dtype
from utils import torch_utils
from utils.errors import OptionError
from utils.torch_utils import inference_dtype

ROOT = Path(__file__).resolve().parents[1]
CPU, CUDA = torch.device('cpu'), torch.device('cuda')


@pytest.mark.parametrize('has_bf16', [False, True])
def test_dtype_follows_the_hardware_unless_told(monkeypatch, has_bf16):
    monkeypatch.setattr(torch_utils, 'cpu_has_bf16', lambda: has_bf16)
    assert inference_dtype(CPU) == (torch.bfloat16 if has_bf16 else None)
    assert inference_dtype(CPU, True) == torch.bfloat16  # emulated where absent: for the mAP
    assert inference_dtype(CPU, False) is None
    assert inference_dtype(CUDA) == torch.float16
    assert inference_dtype(CUDA, False) is None


def test_heads_in_bf16_are_decoded_in_fp32():
    torch.manual_seed(0)
    model = Darknet(str(ROOT / 'cfg' / 'yolov3-mini.cfg')).eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        ref, _ = model(x)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            low, heads = model(x)
    assert low.dtype == torch.float32 and all(h.dtype == torch.float32 for h in heads)
    # the head convs ran in bf16 (not bit-equal), the boxes stay within a pixel of fp32's
    assert not torch.equal(low, ref)
    assert (low[..., :4] - ref[..., :4]).abs().max() < 1.0


def test_amp_is_refused_for_models_that_run_their_own_precision():
    with pytest.raises(OptionError, match='--amp'):
        autocast_dtype(object(), CPU, True, 'model.onnx')
    assert autocast_dtype(object(), CPU, None, 'model.onnx') is None


def test_bf16_evaluation_scores_like_fp32(tiny_data, tmp_path):
    kw = dict(data=str(tiny_data), weights=str(ROOT / 'weights' / 'yolov3-mini.pt'),
              img_size=128, project=str(tmp_path), workers=0, plots=False, verbose=False)
    fp32 = evaluation.run(name='fp32', amp=False, **kw)
    bf16 = evaluation.run(name='bf16', amp=True, **kw)
    assert (fp32['inference_dtype'], bf16['inference_dtype']) == ('float32', 'bfloat16')
    assert fp32['map50'] > 0.3  # a model that finds the shapes, so the comparison means something
    assert bf16['map50'] == pytest.approx(fp32['map50'], abs=0.02)
    assert bf16['map50_95'] == pytest.approx(fp32['map50_95'], abs=0.02)


def test_detect_finds_the_same_objects_in_bf16(tiny_data, tmp_path):
    import detect
    kw = dict(source=str(tiny_data.parent / 'shapes' / 'images' / 'val'), img_size=128,
              weights=str(ROOT / 'weights' / 'yolov3-mini.pt'), project=str(tmp_path))
    _, fp32 = detect.run(name='fp32', amp=False, **kw)
    _, bf16 = detect.run(name='bf16', amp=True, **kw)
    # a box near --conf-thres may flip on a CPU whose bf16 rounds otherwise: allow one
    assert sum(fp32.values()) > 5
    assert sum(abs(bf16[k] - fp32[k]) for k in fp32 | bf16) <= 1
