"""quantize/fixed_point.py and quantize/int_runtime.py: integer requantization rounds as the
fake-quant model does, and the runtime's model scores through test.py and dumps every layer."""
import json
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest

import torch

from quantize import int_runtime
from quantize.config import QuantConfig
from quantize.fixed_point import FixedPointError, multiplier, requantize
from quantize.int_model import IntModel
from tests.conftest import ROOT
from tests.test_export_int import quantized, saved


def exact_round(a, m, n, b):
    """(a m + b) / 2^n to the nearest integer, ties to even, in rationals."""
    v = Fraction(int(a) * int(m) + int(b), 2 ** int(n))
    return round(v)  # Python's round is half to even on Fractions


def test_requantize_rounds_half_to_even_exactly():
    rng = np.random.default_rng(0)
    a = np.concatenate([rng.integers(-2 ** 30, 2 ** 30, 2000), np.arange(-40, 41)])
    for m, n, b in [(1, 2, 0), (3, 0, 5), (1288490189, 32, -7), (1, 7, 64), (2 ** 30, 37, 123)]:
        got = requantize(a, m, n, b)
        want = np.array([exact_round(x, m, n, b) for x in a])
        assert (got == want).all(), (m, n, b)
    assert (requantize(np.arange(-8, 9), 1, 2) == np.rint(np.arange(-8, 9) / 4)).all()


def test_multiplier_is_precise_and_fits_64_bits():
    reals = np.array([2.0 ** -7, 0.3, 1.7, 3e-5, 0.0123])
    for acc_bits in (20, 31, 40):
        m, n = multiplier(reals, acc_bits)
        assert (m < 2 ** min(31, 62 - acc_bits)).all() and (m > 0).all()
        assert np.allclose(m / 2.0 ** n, reals, rtol=2.0 ** (-min(31, 62 - acc_bits) + 2))
    m, n = multiplier(2.0 ** -7, 31)
    assert m[0] & (m[0] - 1) == 0  # a power of two stays one: a shift
    with pytest.raises(FixedPointError, match='leaves 4 bits'):
        multiplier(0.5, 58)
    with pytest.raises(FixedPointError, match='positive'):
        multiplier([0.5, 0.0], 20)


@pytest.fixture(scope='module')
def int_model(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('int')
    model = quantized('yolov3-mini', QuantConfig(mode=3, bn_fold=True, fpga=True))
    saved(model, tmp)
    return model, tmp / 'm_int.json'


def test_int_model_decodes_what_the_fake_quant_model_decodes(int_model):
    model, path = int_model
    im = IntModel(path)
    x = torch.round(torch.rand(2, 3, 64, 96, generator=torch.Generator().manual_seed(1)) * 255)
    x = x / 255
    with torch.no_grad():
        want, _ = model(x)
    got, heads = im(x)
    assert got.shape == want.shape and len(heads) == 3
    obj = want[..., 4] > 0.05  # boxes that matter: equal up to rare one-step roundings
    assert torch.isclose(got[obj], want[obj], rtol=0.05, atol=0.5).float().mean() > 0.99


def test_test_py_scores_an_integer_model(int_model, tiny_data, tmp_path):
    _, path = int_model
    r = subprocess.run([sys.executable, str(ROOT / 'test.py'), '--weights', str(path),
                        '--data', str(tiny_data), '--img-size', '128', '--project',
                        str(tmp_path), '--name', 't'], capture_output=True, text=True,
                       cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    metrics = json.loads((tmp_path / 't' / 'metrics.json').read_text())
    assert 0 <= metrics['map50'] <= 1 and metrics['images'] == 8


def test_dump_writes_every_layer_as_npy_and_bin(int_model, tiny_data, tmp_path):
    _, path = int_model
    image = next((tiny_data.parent / 'shapes' / 'images' / 'val').glob('*.jpg'))
    subprocess.run([sys.executable, '-m', 'quantize.int_runtime', '--weights', str(path),
                    '--source', str(image), '--img-size', '128', '--dump', str(tmp_path / 'd')],
                   check=True, cwd=ROOT)
    manifest, arrays = int_runtime.load(path)
    outs = int_runtime.run(manifest, arrays, int_runtime.image_pixels(image, 128), True)
    assert len(list((tmp_path / 'd').glob('*.npy'))) == len(manifest['layers']) + 1
    for e in manifest['layers']:
        stem = tmp_path / 'd' / f"{e['index']:03d}_{e['type']}"
        a = np.load(f'{stem}.npy')
        assert a.dtype == np.int8 and (a == outs[e['index']][0]).all()
        assert (np.fromfile(f'{stem}.bin', '<i1').reshape(a.shape) == a).all()


def test_unreadable_integer_models_fail_with_one_line(tiny_data, tmp_path):
    bad = tmp_path / 'x_int.json'
    command = [sys.executable, str(ROOT / 'test.py'), '--weights', str(bad), '--data',
               str(tiny_data)]
    bad.write_text('{"format": "yolo-int/1"}')
    r = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 1 and r.stderr.count('\n') == 1 and 'yolo-int/2' in r.stderr
    bad.write_text('{"format": "yolo-int/2"}')
    r = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 1 and r.stderr.count('\n') == 1 and 'missing cfg' in r.stderr


@pytest.mark.parametrize('fmt', ['s8', 'q8', 'q16'])
def test_ptq_format_calibrates_a_checkpoint_the_integer_export_reads_as_that_format(fmt):
    from quantize.export_int import integer_model
    from quantize.ptq import calibrated
    from tests.conftest import _built
    x = torch.rand(2, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    model = calibrated(_built('yolov3-mini'), [x], 'max', fmt=fmt, int8_heads=True)
    assert integer_model(model)[0]['number_format'] == fmt


def test_float_heads_are_refused_by_the_fixed_point_export_naming_the_way_out():
    """PTQ's default int8 model leaves the heads' outputs float (for Q/DQ engines); the
    fixed-point runtimes need integers everywhere."""
    from quantize.export_int import IntExportError, integer_model
    from quantize.ptq import calibrated
    from tests.conftest import _built
    x = torch.rand(2, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    model = calibrated(_built('yolov3-mini'), [x], 'max')
    heads = [j - 1 for j in model.yolo_layers]
    assert all(model.module_list[h].out_quant is None for h in heads)
    with pytest.raises(IntExportError, match=f'layer {heads[0]}:.*--int8-heads'):
        integer_model(model)
