"""Quantization invariants: disabled == float, fake-quant == quantize then dequantize, folded ==
conv + BN, powers of two, DoReFa's 2^k levels, shared scales, checkpoints, train.py flags."""
import copy
import csv

import pytest
import torch

import train
from models.layers import Route
from models.weights import load_checkpoint, save_checkpoint
from quantize.loader import load_model
from quantize.config import QuantConfig
from quantize.modules import ActQuant, QuantConvBNAct, QuantShortcut
from quantize.qat import freeze, quantize_model, set_quant_enabled
from quantize.quantizers import dequantize, fake_quant, quantize
from tests.conftest import _built

CONFIGS = [QuantConfig(mode=1), QuantConfig(mode=1, bn_fold=True), QuantConfig(mode=2),
           QuantConfig(mode=2, w_bits=2, a_bits=4, fpga=True),
           QuantConfig(mode=3), QuantConfig(mode=3, bn_fold=True, fpga=True)]


def x_batch(n=2, h=64, w=96, seed=0):
    return torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(seed))


def calibrate(model, x):
    """Observe ranges without touching BN statistics: only the quantizers in train mode."""
    model.eval()
    for m in model.modules():
        if isinstance(m, ActQuant):
            m.train()
    with torch.no_grad():
        model(x)
    return model.eval()


@pytest.mark.parametrize('name', ['yolov3-mini', 'yolov4-tiny', 'yolov3-mobilenetv3'])
@pytest.mark.parametrize('config', CONFIGS, ids=str)
def test_disabled_quantization_is_the_float_model(name, config):
    model = _built(name)
    q = calibrate(quantize_model(copy.deepcopy(model), config), x_batch())
    set_quant_enabled(q, False)
    x = x_batch(seed=1)
    with torch.no_grad():
        assert (q(x)[0] - model(x)[0]).abs().max() < 1e-3  # folding reorders float sums
        for a, b in zip(q(x)[1], model(x)[1]):
            assert (a - b).abs().max() < 1e-4
    if name == 'yolov3-mobilenetv3':  # depthwise convs are quantized too
        assert any(isinstance(m, QuantConvBNAct) and m.conv.groups > 1 for m in q.module_list)


def test_fake_quant_is_quantize_then_dequantize():
    x = torch.randn(1000) * 3
    for scale, zp, lo, hi in [(0.05, 0, -128, 127), (0.02, 37, 0, 255), (0.5, 0, -7, 7)]:
        s, z = torch.tensor(scale), torch.tensor(float(zp))
        assert torch.equal(fake_quant(x, s, z, lo, hi), dequantize(quantize(x, s, z, lo, hi), s, z))


def test_straight_through_gradient_inside_the_range_only():
    x = torch.tensor([-10.0, -0.3, 0.0, 0.4, 10.0], requires_grad=True)
    fake_quant(x, torch.tensor(0.1), torch.tensor(0.0), -8, 7).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]


def test_folded_conv_equals_conv_bn_in_eval_and_in_training():
    model = copy.deepcopy(_built('yolov3-mini'))
    conv = model.module_list[0]
    q = QuantConvBNAct.from_float(copy.deepcopy(conv), QuantConfig(mode=3, bn_fold=True))
    q.enabled = q.out_quant.enabled = False
    x = x_batch()
    with torch.no_grad():
        assert (q.eval()(x) - conv.eval()(x)).abs().max() < 1e-5
        float_bn = copy.deepcopy(conv).train()
        ref = float_bn(x)  # float BN in training: batch statistics
        assert (q.train()(x) - ref).abs().max() < 1e-4
        assert torch.allclose(q.bn.running_mean, float_bn.bn.running_mean, atol=1e-6)
        assert torch.allclose(q.bn.running_var, float_bn.bn.running_var, atol=1e-6)
        q.bn_frozen = True  # after the freeze, training uses the running statistics too
        assert (q.train()(x) - q.eval()(x)).abs().max() < 1e-6


def _scales(q):
    scales = []
    for m in q.modules():
        if isinstance(m, ActQuant):
            scales.append(m.params()[0])
        if isinstance(m, QuantConvBNAct) and m.config.mode != 2:
            w = m.folded_weight_bias()[0] if m.fold else m.conv.weight
            amax = w.detach().abs().flatten(1).amax(1)
            from quantize.quantizers import symmetric_scale
            scales.append(symmetric_scale(amax, m.w_bits, m.config.fpga))
    return torch.cat([s.flatten() for s in scales])


@pytest.mark.parametrize('mode', [1, 2, 3])
def test_fpga_scales_are_powers_of_two(mode):
    q = calibrate(quantize_model(copy.deepcopy(_built('yolov3-mini')),
                                 QuantConfig(mode=mode, fpga=True)), x_batch())
    log2 = torch.log2(_scales(q))
    assert torch.equal(log2, torch.round(log2))


@pytest.mark.parametrize('bits', [1, 2, 3, 4])
def test_dorefa_has_at_most_2_to_the_k_weight_values(bits):
    q = quantize_model(copy.deepcopy(_built('yolov3-mini')), QuantConfig(mode=2, w_bits=bits))
    low = [m for m in q.module_list if isinstance(m, QuantConvBNAct) and m.w_bits == bits]
    assert len(low) > 10  # all but the first conv and the heads (kept at 8 bits)
    for m in low:
        assert len(torch.unique(m.quant_weight(m.conv.weight))) <= 2 ** bits


def test_joined_tensors_share_one_quantizer_in_mode_3():
    q = quantize_model(copy.deepcopy(_built('yolov4-tiny')), QuantConfig(mode=3))
    from quantize.qat import _producer
    routes = [(i, m) for i, m in enumerate(q.module_list) if isinstance(m, Route)
              and len(m.froms) > 1]
    assert routes
    for _, r in routes:
        quantizers = {id(_producer(q, j).out_quant) for j in r.froms if _producer(q, j)}
        assert len(quantizers) == 1
    mini = quantize_model(copy.deepcopy(_built('yolov3-mini')), QuantConfig(mode=3))
    for i, m in enumerate(mini.module_list):
        if isinstance(m, QuantShortcut):  # both summands on one scale: an integer add
            assert _producer(mini, i - 1).out_quant is _producer(mini, m.froms[0]).out_quant
    separate = quantize_model(copy.deepcopy(_built('yolov4-tiny')), QuantConfig(mode=1))
    ids = {id(m.out_quant) for m in separate.module_list if hasattr(m, 'out_quant')}
    assert len(ids) == sum(hasattr(m, 'out_quant') for m in separate.module_list)


def test_quantized_checkpoint_loads_back_with_the_same_outputs(tmp_path):
    config = QuantConfig(mode=1, bn_fold=True, fpga=True)
    q = calibrate(quantize_model(copy.deepcopy(_built('yolov3-mini')), config), x_batch())
    path = tmp_path / 'q.pt'
    save_checkpoint({'cfg': q.cfg_text, 'model': q.state_dict(), 'quant': q.quant_config}, path)
    back = load_model(path).eval()
    x = x_batch(seed=3)
    with torch.no_grad():
        assert torch.equal(q(x)[0], back(x)[0])


def test_freeze_stops_range_updates():
    q = quantize_model(copy.deepcopy(_built('yolov3-mini')), QuantConfig(mode=1))
    calibrate(q, x_batch())
    freeze(q)
    obs = q.module_list[0].out_quant.observer
    before = obs.hi.clone()
    q.train()
    q(x_batch(seed=5) * 10)
    assert torch.equal(obs.hi, before)


@pytest.mark.parametrize('extra', [{'sr': True, 's': 0.001}, {'KDstr': 3}, {'resume': True}],
                         ids=['sr', 'kd', 'resume'])
def test_train_py_quantized_combines(extra, tiny_data, tmp_path):
    common = dict(data=str(tiny_data), epochs=2, batch_size=8, img_size=[128], workers=0,
                  notest=True, project=str(tmp_path), quantized=3, BN_Fold=True)
    if 'KDstr' in extra:
        t = _built('yolov3-mini')
        save_checkpoint({'cfg': t.cfg_text, 'model': t.state_dict()}, tmp_path / 't.pt')
        extra = {**extra, 't_weights': str(tmp_path / 't.pt')}
    if extra.get('resume'):
        train.run(**{**common, 'epochs': 1, 'name': 'first'})
        last = tmp_path / 'first' / 'weights' / 'last.pt'
        ckpt = load_checkpoint(last)
        ckpt['opt']['epochs'] = 2  # as if stopped after epoch 1 of 2
        save_checkpoint(ckpt, last)
        train.run(resume=str(last), project=str(tmp_path), workers=0)
        run_dir = tmp_path / 'first'
    else:
        train.run(**common, **extra)
        run_dir = tmp_path / 'exp'
    with open(run_dir / 'results.csv') as f:
        assert len(list(csv.DictReader(f))) == 2
    model = load_model(run_dir / 'weights' / 'last.pt').eval()  # the EMA: what gets evaluated
    assert any(isinstance(m, QuantConvBNAct) for m in model.module_list)
    assert all(q.observer.seen > 0 for q in model.modules() if isinstance(q, ActQuant))
    x = x_batch(h=128, w=128)
    with torch.no_grad():
        quantized = model(x)[0]
        set_quant_enabled(model, False)
        assert not torch.equal(quantized, model(x)[0])  # it really is fake-quantized
