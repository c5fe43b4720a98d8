"""Post-training quantization: each calibrator picks a sensible range, ptq.py writes a checkpoint
that loads back as the same int8 model."""
import json

import numpy as np
import pytest
import torch

from quantize.loader import load_model
from quantize.calibrate import BINS, pick_amax
from quantize.modules import ActQuant
from quantize.ptq import run
from tests.conftest import ROOT


def histogram(values, top):
    return np.histogram(np.abs(values), BINS, (0, top))[0].astype(float)


def test_calibrators_on_known_distributions():
    rng = np.random.default_rng(0)
    uniform = rng.uniform(0, 4, 200_000)
    h = histogram(uniform, 4.0)
    assert pick_amax(h, 4.0, 'max') == 4.0
    assert pick_amax(h, 4.0, 'percentile', 99.0) == pytest.approx(3.96, abs=0.01)
    assert pick_amax(h, 4.0, 'mse') > 3.8  # nothing to gain by clipping a uniform
    # a heavy tail (Laplace, b = 1): clipping the rare largest values wins; the MSE-optimal
    # 8-bit clip is about 9.9 b (Banner et al. 2019), percentile 99.99 is ln(1e4) = 9.2 b
    tailed = rng.laplace(0, 1, 400_000)
    top = float(np.abs(tailed).max())
    h = histogram(tailed, top)
    assert pick_amax(h, top, 'percentile') == pytest.approx(9.2, abs=0.6)
    assert pick_amax(h, top, 'mse') == pytest.approx(9.9, abs=1.5)
    assert 4 < pick_amax(h, top, 'entropy') <= top
    # one far outlier: max spends the 8 bits on empty range; percentile and entropy clip it,
    # mse halfway (its squared clipping error is paid in full, once)
    spiky = np.concatenate([rng.normal(0, 1, 200_000), [100.0]])
    h = histogram(spiky, 100.0)
    for method in ('percentile', 'entropy'):
        assert 3 < pick_amax(h, 100.0, method) < 20, method
    assert 20 < pick_amax(h, 100.0, 'mse') < 80
    with pytest.raises(ValueError, match='--method'):
        pick_amax(h, 40.0, 'nope')


@pytest.mark.parametrize('method', ['max', 'entropy'])
def test_ptq_writes_a_calibrated_int8_checkpoint(method, tiny_data, tmp_path):
    report = run(weights=str(ROOT / 'weights' / 'yolov3-mini.pt'), data=str(tiny_data),
                 calib=16, method=method, img_size=128, batch_size=8, workers=0,
                 project=str(tmp_path), name='p')
    saved = json.loads((tmp_path / 'p' / 'ptq.json').read_text())
    assert saved['float']['map50'] > 0.05  # the shipped model sees the tiny set's shapes
    assert abs(saved['int8']['map50'] - saved['float']['map50']) < 0.1  # 8 bits cost little
    model = load_model(report['pt']).eval()
    quantizers = [m for m in model.modules() if isinstance(m, ActQuant)]
    assert quantizers and all(q.observer.seen > 0 and q.observer.hi > 0 for q in quantizers)
    x = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        out = model(x)[0]
        assert torch.isfinite(out).all()
        float_out = load_model(ROOT / 'weights' / 'yolov3-mini.pt').float().eval()(x)[0]
    assert not torch.equal(out, float_out)  # really quantized
    assert (out[..., 4] - float_out[..., 4]).abs().max() < 0.2  # and close


def test_the_calibration_sample_is_the_same_every_run(tiny_data):
    """--calib N takes a shuffled sample seeded by itself: the same images every run, whatever
    the global RNG did before (it drew another sample each run, and so other int8 ranges)."""
    from quantize.ptq import calibration_batches
    from utils.datasets import parse_data_cfg
    train_list = parse_data_cfg(tiny_data)['train']
    runs = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        runs.append(torch.cat(calibration_batches(train_list, 6, 8, 64, 4, 'cpu', 0)))
    assert torch.equal(*runs)
