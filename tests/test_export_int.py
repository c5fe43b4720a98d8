"""quantize/export_int.py: the integer model, executed by a numpy runtime that reads only the
npz + json, equals the fake-quant model within one step per layer, for each mode."""
import copy
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from models.weights import save_checkpoint
from quantize.config import QuantConfig
from quantize.export_int import IntExportError, integer_model
from quantize.qat import quantize_model
from quantize.qdq import act_qparams, output_quantizers
from tests import int_runtime
from tests.conftest import ROOT, _built
from tests.test_quantize import calibrate, x_batch

CONFIGS = [QuantConfig(mode=3), QuantConfig(mode=3, bn_fold=True, fpga=True),
           QuantConfig(mode=1, fpga=True), QuantConfig(mode=1, bn_fold=True, fpga=True),
           QuantConfig(mode=2, w_bits=4, a_bits=4, fpga=True),
           QuantConfig(mode=2, w_bits=1, a_bits=2, fpga=True, dorefa_all=True)]


def quantized(name, config):
    return calibrate(quantize_model(copy.deepcopy(_built(name)), config), x_batch())


def reference_integers(model, x):
    """Each layer's fake-quant output as the integers of its grid."""
    quantizers = output_quantizers(model)
    outs = []
    hooks = [m.register_forward_hook(lambda m, a, o: outs.append(o)) for m in model.module_list]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    ints = []
    for q, o in zip(quantizers, outs):
        if q is None:  # a yolo layer: its input's integers
            ints.append(ints[-1])
            continue
        scale, zp, _, _ = act_qparams(q)
        t = o.double().numpy() / scale + zp
        assert np.abs(t - np.rint(t)).max() < 1e-3  # really on the grid
        ints.append(np.rint(t).astype(np.int64))
    return ints


def saved(model, tmp_path):
    manifest, arrays = integer_model(model)
    stem = tmp_path / 'm_int'
    np.savez(f'{stem}.npz', **arrays)
    (tmp_path / 'm_int.json').write_text(json.dumps(manifest))
    return int_runtime.load(stem)


@pytest.mark.parametrize('name', ['yolov3-mini', 'yolov4-tiny', 'yolov3-tiny'])
@pytest.mark.parametrize('config', CONFIGS, ids=str)
def test_integer_runtime_equals_fake_quant_within_one_step_per_layer(name, config, tmp_path):
    model = quantized(name, config)
    manifest, arrays = saved(model, tmp_path)
    x = x_batch(1)
    ref = reference_integers(model, x)
    first = int_runtime.quantize_input(x.double().numpy(), manifest)
    for i, e in enumerate(manifest['layers']):
        got = int_runtime.step(e, ref[i - 1] if i else first, ref[:i], arrays)
        diff = np.abs(got - ref[i])
        assert diff.max() <= 1, (i, e['type'], diff.max())
        # apart only at rounding ties, which sums of few levels (2-bit activations) hit often
        assert (diff > 0).mean() < (0.01 if config.a_bits >= 4 else 0.1), (i, e['type'])
    ends = int_runtime.run(manifest, arrays, x.double().numpy())
    for j in manifest['outputs']:  # end to end, the steps do not pile up
        assert np.abs(ends[j] - ref[j]).mean() < 1


def test_weights_are_integers_with_the_advertised_shifts(tmp_path):
    model = quantized('yolov3-mini', QuantConfig(mode=3, bn_fold=True, fpga=True))
    manifest, arrays = saved(model, tmp_path)
    convs = [e for e in manifest['layers'] if e['type'] == 'conv']
    assert len(convs) == 28
    for e in convs:
        assert arrays[e['weight']].dtype == np.int8 and arrays[e['bias']].dtype == np.int32
        mult = arrays[e['multiplier']]
        np.testing.assert_allclose(mult, 2.0 ** -np.array(e['shift']), rtol=1e-9)
    dorefa = quantized('yolov3-mini', QuantConfig(mode=2, w_bits=3, fpga=True))
    _, arrays = saved(dorefa, tmp_path)
    assert len(np.unique(arrays['w2'])) <= 2 ** 3  # DoReFa's k-bit levels, now integers


def test_models_without_an_integer_form_are_refused_by_layer():
    with pytest.raises(IntExportError, match='not quantized'):
        integer_model(_built('yolov3-mini'))
    with pytest.raises(IntExportError, match='layer 30 .*different scales'):
        integer_model(quantized('yolov3-mini', QuantConfig(mode=1)))
    with pytest.raises(IntExportError, match='layer 13'):
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
    assert manifest['format'] == 'yolo-int/1' and len(manifest['outputs']) == 3
    assert (tmp_path / 'int' / 'q_int.npz').is_file()
