import os

import numpy as np
import pytest
import torch

from models import Darknet
from models.weights import (WeightsError, count_darknet_floats, load_checkpoint,
                            load_darknet_weights, load_model, read_darknet_file,
                            save_checkpoint, save_darknet_weights)
from tests.conftest import CFGS, cfg_path, randomize_bn


def _outputs(model, x):
    """Every head's raw output (a segmentation-only network decodes no boxes)."""
    with torch.no_grad():
        return torch.cat([h.flatten() for h in model.eval()(x)[1]])


@pytest.mark.parametrize('name', CFGS)
def test_darknet_weights_round_trip(built, name, tmp_path):
    src = built(name)
    path = tmp_path / f'{name}.weights'
    save_darknet_weights(src, path, seen=12345)
    header, data = read_darknet_file(path)
    assert header == {'major': 0, 'minor': 2, 'revision': 0, 'seen': 12345}
    assert len(data) == count_darknet_floats(src)  # the file holds exactly the cfg's floats
    dst = Darknet(cfg_path(name))
    load_darknet_weights(dst, path)
    x = torch.randn(1, 3, 64, 64)
    assert torch.equal(_outputs(src, x), _outputs(dst, x))
    path.unlink()


def _mini(tmp_path):
    model = randomize_bn(Darknet(cfg_path('yolov3-mini')))
    path = tmp_path / 'mini.weights'
    save_darknet_weights(model, path)
    return model, path


def test_too_many_or_too_few_floats(tmp_path):
    model, path = _mini(tmp_path)
    need = count_darknet_floats(model)
    raw = path.read_bytes()
    (tmp_path / 'long.weights').write_bytes(raw + np.zeros(3, np.float32).tobytes())
    (tmp_path / 'short.weights').write_bytes(raw[:-8])
    with pytest.raises(WeightsError, match=f'holds {need + 3} floats, the cfg needs {need}'):
        load_darknet_weights(Darknet(cfg_path('yolov3-mini')), tmp_path / 'long.weights')
    with pytest.raises(WeightsError, match=f'holds {need - 2} floats, the cfg needs {need}'):
        load_darknet_weights(Darknet(cfg_path('yolov3-mini')), tmp_path / 'short.weights')


def test_cutoff_backbone(tmp_path):
    """A backbone file (like darknet53.conv.74) fills the first layers and leaves the rest."""
    model, _ = _mini(tmp_path)
    cutoff = 10
    save_darknet_weights(model, tmp_path / 'backbone.conv.10', cutoff=cutoff)
    fresh = Darknet(cfg_path('yolov3-mini'))
    untouched = fresh.module_list[cutoff].conv.weight.clone()
    load_darknet_weights(fresh, tmp_path / 'backbone.conv.10', cutoff=cutoff)
    for a, b in zip(model.module_list[:cutoff].state_dict().values(),
                    fresh.module_list[:cutoff].state_dict().values()):
        assert torch.equal(a, b)
    assert torch.equal(fresh.module_list[cutoff].conv.weight, untouched)
    with pytest.raises(WeightsError, match='weights and cfg do not match'):
        load_darknet_weights(Darknet(cfg_path('yolov3-mini')), tmp_path / 'backbone.conv.10')


def test_old_header_with_int32_seen(tmp_path):
    model, path = _mini(tmp_path)
    floats = read_darknet_file(path)[1]
    old = tmp_path / 'old.weights'
    old.write_bytes(np.array([0, 1, 0, 777], np.int32).tobytes() + floats.tobytes())
    fresh = Darknet(cfg_path('yolov3-mini'))
    assert load_darknet_weights(fresh, old)['seen'] == 777
    x = torch.randn(1, 3, 64, 64)
    assert torch.equal(_outputs(model, x), _outputs(fresh, x))


def test_checkpoint_round_trip(tmp_path):
    model, _ = _mini(tmp_path)
    path = tmp_path / 'ckpt' / 'last.pt'
    save_checkpoint({'cfg': model.cfg_text, 'model': model.state_dict(), 'epoch': 3,
                     'opt': {'img_size': [320, 320], 'name': 'exp'}}, path)
    assert sorted(os.listdir(path.parent)) == ['last.pt']  # no temp file left behind
    loaded = load_model(path)  # the cfg comes from the checkpoint itself
    x = torch.randn(1, 3, 64, 64)
    assert torch.equal(_outputs(model, x), _outputs(loaded, x))
    assert load_checkpoint(path)['epoch'] == 3


def test_checkpoint_of_other_cfg_is_refused(tmp_path):
    model, _ = _mini(tmp_path)
    path = tmp_path / 'mini.pt'
    save_checkpoint({'cfg': model.cfg_text, 'model': model.state_dict()}, path)
    with pytest.raises(WeightsError, match='does not fit the model'):
        load_model(path, cfg=cfg_path('yolov3-tiny'))


class Exploit:
    """Unpickling this would create a file: proof that code ran."""
    marker = None

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}',))


def test_malicious_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / 'pwned'
    Exploit.marker = marker
    path = tmp_path / 'evil.pt'
    torch.save({'model': {}, 'payload': Exploit()}, path)
    with pytest.raises(WeightsError, match='refused'):
        load_checkpoint(path)
    with pytest.raises(WeightsError, match='refused'):
        load_model(path)
    assert not marker.exists()


def test_garbage_files(tmp_path):
    junk = tmp_path / 'junk.pt'
    junk.write_bytes(b'not a checkpoint at all')
    with pytest.raises(WeightsError, match='junk.pt'):
        load_checkpoint(junk)
    tiny = tmp_path / 'tiny.weights'
    tiny.write_bytes(b'\0' * 5)
    with pytest.raises(WeightsError, match='too short'):
        load_darknet_weights(Darknet(cfg_path('yolov3-mini')), tiny)


def test_nan_weights_load_with_one_warning_naming_the_tensor(tmp_path, caplog):
    from models.weights import load_model, save_checkpoint
    from tests.conftest import _built
    model = _built('yolov3-mini')
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state['module_list.2.conv.weight'][0, 0, 0, 0] = float('nan')
    save_checkpoint({'cfg': model.cfg_text, 'model': state}, tmp_path / 'nan.pt')
    load_model(tmp_path / 'nan.pt')
    warnings = [r.message for r in caplog.records if 'NaN' in r.message]
    assert len(warnings) == 1 and 'module_list.2.conv.weight' in warnings[0]
    save_checkpoint({'cfg': model.cfg_text, 'model': model.state_dict()}, tmp_path / 'ok.pt')
    caplog.clear()
    load_model(tmp_path / 'ok.pt')
    assert not [r for r in caplog.records if 'NaN' in r.message]
