"""QAT from a calibrated checkpoint: train.py --weights <ptq.pt> --quantized N begins with the
checkpoint's observed ranges, and --quant-freeze-epoch 0 keeps them (and the BN statistics) as
they were while the weights learn."""
import pytest
import torch

import train
from models.weights import load_checkpoint
from quantize import ptq
from tests.conftest import ROOT
from utils.errors import OptionError


@pytest.fixture(scope='module')
def calibrated(tiny_data, tmp_path_factory):
    root = tmp_path_factory.mktemp('qat_start')
    report = ptq.run(weights=str(ROOT / 'weights' / 'yolov3-mini.pt'), data=str(tiny_data),
                     calib=8, img_size=128, workers=0, eval=False, project=str(root), name='p')
    return root, report['pt']


def fixed_state(state):
    """The tensors frozen QAT must not move: observed ranges and BN statistics."""
    return {k: v for k, v in state.items()
            if k.endswith(('observer.lo', 'observer.hi', 'running_mean', 'running_var'))}


def test_qat_starts_from_the_calibrated_ranges_and_keeps_them_frozen(calibrated, tiny_data):
    root, pt = calibrated
    start = load_checkpoint(pt)
    train.run(weights=pt, quantized=1, float_heads=True, quant_freeze_epoch=0,
              data=str(tiny_data), epochs=1, batch_size=8, img_size=[128], workers=0,
              notest=True, project=str(root), name='q')
    end = load_checkpoint(root / 'q' / 'weights' / 'last.pt')
    kept, before = fixed_state(end['model']), fixed_state(start['model'])
    assert kept.keys() == before.keys() and len(kept) > 20
    assert all(torch.equal(kept[k], before[k]) for k in kept)
    moved = [k for k, v in end['model'].items() if k.endswith('conv.weight') and
             not torch.equal(v, start['model'][k])]
    assert moved  # the weights did learn


def test_a_start_of_another_quantization_is_refused(calibrated, tiny_data):
    root, pt = calibrated
    with pytest.raises(OptionError, match=r'quantized with mode=1, this run with 3: give the '
                                          r'flags it was quantized with \(--quantized 1 '
                                          r'--float-heads\)'):
        train.run(weights=pt, quantized=3, float_heads=True, data=str(tiny_data), epochs=1,
                  batch_size=8, img_size=[128], workers=0, notest=True, project=str(root),
                  name='r')
    assert not (root / 'r').exists()


def test_a_run_keeps_the_scale_sharing_of_the_checkpoint_it_continues(tmp_path):
    """share_copies is on for every new quantization; a quantized start or resumed checkpoint
    from before it existed (no key: its ranges were observed apart) keeps it off, read from the
    checkpoint once, when the model is quantized."""
    from models import Darknet
    from models.weights import save_checkpoint
    from quantize.config import QuantConfig
    from quantize.hook import QuantHook
    from quantize.qat import quantize_model
    cfg = ROOT / 'cfg' / 'yolov3-mini.cfg'
    old = quantize_model(Darknet(str(cfg)), QuantConfig(mode=3))
    quant = {k: v for k, v in old.quant_config.items() if k != 'share_copies'}
    save_checkpoint({'cfg': old.cfg_text, 'model': old.state_dict(), 'quant': quant},
                    tmp_path / 'old.pt')
    for start, resumed, want in (('', '', True), ('', str(tmp_path / 'old.pt'), False),
                                 (str(tmp_path / 'old.pt'), '', False)):
        hook = QuantHook(QuantConfig(mode=3, share_copies=True), 1, start, resumed)
        model = hook.on_model(Darknet(str(cfg)))
        assert model.quant_config['share_copies'] is want, (start, resumed)
