"""quantize/export_int.py + quantize/int_runtime.py: the integer model, executed from the npz +
json alone, equals the fake-quant model within one step per layer, in every mode and format."""
import copy
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from models.weights import save_checkpoint
from quantize import int_runtime
from quantize.config import QuantConfig
from quantize.export_int import IntExportError, integer_model
from quantize.qat import quantize_model
from tests.conftest import ROOT, _built
from tests.test_quantize import calibrate, x_batch

CONFIGS = [QuantConfig(mode=3), QuantConfig(mode=3, bn_fold=True, fpga=True),
           QuantConfig(mode=3, bn_fold=True, fpga=True, w_bits=16, a_bits=16),
           QuantConfig(mode=1, fpga=True), QuantConfig(mode=1, bn_fold=True, fpga=True),
           QuantConfig(mode=2, w_bits=4, a_bits=4, fpga=True, dorefa_all=True),
           QuantConfig(mode=2, w_bits=1, a_bits=2, fpga=True, dorefa_all=True)]


def quantized(name, config):
    return calibrate(quantize_model(copy.deepcopy(_built(name)), config), x_batch())


def pixels_batch(n=1):
    """uint8 images and the float images in [0, 1] the fake-quant model sees."""
    p = torch.round(x_batch(n) * 255).to(torch.uint8)
    return p.numpy(), p.float() / 255


def reference_integers(model, manifest, arrays, x):
    """Each layer's fake-quant output as integers of the manifest's grid (moves of integers:
    routes, upsample, maxpool and heads, executed on those)."""
    outs = []
    hooks = [m.register_forward_hook(lambda m, a, o: outs.append(o)) for m in model.module_list]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    ints = {}
    for e in manifest['layers']:
        i, p = e['index'], e.get('out')
        if p is None:
            ints[i] = int_runtime.step(e, ints[i - 1], ints, arrays)
            continue
        t = outs[i].double().numpy() / p['scale'] + p['zero_point']
        assert np.abs(t - np.rint(t)).max() < 1e-2  # really on the grid
        ints[i] = np.rint(t).astype(np.int64)
    return ints


def saved(model, tmp_path, fmt=''):
    manifest, arrays = integer_model(model, fmt)
    stem = tmp_path / 'm_int'
    np.savez(f'{stem}.npz', **arrays)
    (tmp_path / 'm_int.json').write_text(json.dumps(manifest))
    return int_runtime.load(f'{stem}.json')


@pytest.mark.parametrize('name', ['yolov3-mini', 'yolov4-tiny', 'yolov3-tiny'])
@pytest.mark.parametrize('config', CONFIGS, ids=str)
def test_integer_runtime_equals_fake_quant_within_one_step_per_layer(name, config, tmp_path):
    model = quantized(name, config)
    manifest, arrays = saved(model, tmp_path)
    pixels, x = pixels_batch()
    ref = reference_integers(model, manifest, arrays, x)
    first = int_runtime.quantize_image(pixels, manifest)
    for e in manifest['layers']:
        i = e['index']
        got = int_runtime.step(e, ref[i - 1] if i else first, ref, arrays)
        diff = np.abs(got - ref[i])
        assert diff.max() <= 1, (i, e['type'], diff.max())
        # apart only where float32 rounds across a tie: sums of few levels (2-bit activations)
        # sit on ties often, 16-bit grids are finer than float32 resolves
        limit = 0.1 if config.a_bits < 4 else 0.01 if config.a_bits > 8 else 0.002
        assert (diff > 0).mean() < limit, (i, e['type'])
    ends = int_runtime.run(manifest, arrays, pixels)
    for j in manifest['outputs']:  # end to end, the steps do not pile up
        assert np.abs(ends[j] - ref[j]).mean() < 1


def test_format_follows_the_scales_and_bits(tmp_path):
    s8 = quantized('yolov3-mini', QuantConfig(mode=3))
    q8 = quantized('yolov3-mini', QuantConfig(mode=3, bn_fold=True, fpga=True))
    q16 = quantized('yolov3-mini', QuantConfig(mode=3, bn_fold=True, fpga=True, w_bits=16,
                                                a_bits=16))
    assert [integer_model(m)[0]['number_format'] for m in (s8, q8, q16)] == ['s8', 'q8', 'q16']
    manifest, arrays = saved(q8, tmp_path)
    convs = [e for e in manifest['layers'] if e['type'] == 'conv']
    assert len(convs) == 28
    for e in convs:  # q8: int8 weights, requantization M a power of two (a shift)
        assert arrays[e['weight']].dtype == np.int8
        m = arrays[e['requant']['m']]
        assert (m & (m - 1) == 0).all()
    _, arrays16 = saved(q16, tmp_path)
    assert arrays16['w1'].dtype == np.int16 and np.abs(arrays16['w1']).max() > 127
    assert integer_model(q8, 's8')[0]['number_format'] == 's8'  # q8 fits s8 as well
    with pytest.raises(IntExportError, match=r'layer input: scale .* q8 needs power-of-two'):
        integer_model(s8, 'q8')
    with pytest.raises(IntExportError, match='layer input: .* more than s8 holds'):
        integer_model(q16, 's8')
    no_fold = quantized('yolov3-mini', QuantConfig(mode=3, fpga=True))
    with pytest.raises(IntExportError, match='layer 0: .*not a shift in q8: .*--BN_Fold'):
        integer_model(no_fold, 'q8')
    dorefa = quantized('yolov3-mini', QuantConfig(mode=2, w_bits=3, fpga=True))
    with pytest.raises(IntExportError, match='layer 0: weights up to 255 do not fit s8'):
        integer_model(dorefa)  # DoReFa's 8-bit first conv: odd levels -255..255
    dorefa = quantized('yolov3-mini', QuantConfig(mode=2, w_bits=3, fpga=True, dorefa_all=True))
    _, arrays = saved(dorefa, tmp_path)
    assert len(np.unique(arrays['w2'])) <= 2 ** 3  # DoReFa's k-bit levels, now integers


def test_models_without_an_integer_form_are_refused_by_layer():
    with pytest.raises(IntExportError, match='not quantized'):
        integer_model(_built('yolov3-mini'))
    with pytest.raises(IntExportError, match='layer 30 .*different scales'):
        integer_model(quantized('yolov3-mini', QuantConfig(mode=1)))
    with pytest.raises(IntExportError, match='layer 0: activation Hardswish has no integer'):
        integer_model(quantized('yolov3-mobilenetv3', QuantConfig(mode=3)))


def test_command_writes_npz_and_manifest(tmp_path):
    model = quantized('yolov3-mini', QuantConfig(mode=3))
    ckpt = tmp_path / 'q.pt'
    save_checkpoint({'cfg': model.cfg_text, 'model': model.state_dict(),
                     'quant': model.quant_config}, ckpt)
    subprocess.run([sys.executable, str(ROOT / 'quantize' / 'export_int.py'), '--weights',
                    str(ckpt), '--project', str(tmp_path), '--name', 'int'], check=True,
                   cwd=tmp_path)
    manifest = json.loads((tmp_path / 'int' / 'q_int.json').read_text())
    assert manifest['format'] == 'yolo-int/2' and len(manifest['outputs']) == 3
    assert manifest['number_format'] == 's8'
    assert (tmp_path / 'int' / 'q_int.npz').is_file()
    r = subprocess.run([sys.executable, str(ROOT / 'quantize' / 'export_int.py'), '--weights',
                        str(ckpt), '--project', str(tmp_path), '--format', 'q16'],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 1 and r.stderr.count('\n') == 1 and 'q16 needs' in r.stderr


COPY_ROUTE_CFG = """[net]
width=64
height=64
channels=3

[convolutional]
batch_normalize=1
filters=8
size=3
stride=2
pad=1
activation=leaky

[convolutional]
batch_normalize=1
filters=8
size=3
stride=2
pad=1
activation=leaky

[dropout]
probability=0.1

[route]
layers=-3

[maxpool]
size=2
stride=2

[route]
layers=-1,-3

[convolutional]
filters=21
size=1
stride=1
pad=1
activation=linear

[yolo]
mask=0,1,2
anchors=10,14, 23,27, 37,58
classes=2
num=3
"""


@pytest.mark.parametrize('share', [True, False])
def test_a_concat_through_a_copy_route_shares_its_scale_and_a_dropout_exports(share):
    """Yolo-Fastest's shape: a concat of an input that arrives through a single-layer route
    (here via a maxpool) and a dropout's output. With share_copies (every model quantized
    since 2026-12-07) both inputs share one scale, so the integer export takes it, the
    manifest (dropout as a route from the layer before) validates and runs; checkpoints from
    before keep their separate scales and are refused by layer."""
    from models import Darknet
    from quantize.int_schema import validate
    from tests.conftest import randomize_bn
    torch.manual_seed(0)
    float_model = randomize_bn(Darknet(COPY_ROUTE_CFG)).eval()
    model = quantize_model(copy.deepcopy(float_model), QuantConfig(mode=3, share_copies=share))
    calibrate(model, x_batch(2, 64, 64))
    if not share:
        with pytest.raises(IntExportError, match='layer 5 .*different scales'):
            integer_model(model)
        return
    manifest, arrays = integer_model(model)
    assert manifest['layers'][2] == {'type': 'route', 'index': 2, 'from': [1], 'groups': 1,
                                     'group_id': 0}
    validate(json.loads(json.dumps(manifest)), arrays)
    pixels = torch.round(x_batch(1, 64, 64) * 255).to(torch.uint8).numpy()
    outs = int_runtime.run(manifest, arrays, pixels)
    assert len(np.unique(outs[manifest['outputs'][0]])) > 10
