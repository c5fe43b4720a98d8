"""compress.py --images: a trained detector compressed from photos without labels, the dense
model teaching every training stage and scoring them on photos held out from training."""
import json
from pathlib import Path

import pytest
import yaml

import compress
from compress.stages import evaluate
from models.cfg import save_cfg
from models.weights import load_model, save_darknet_weights
from tests.conftest import ROOT
from tests.test_compress import tiny_args
from utils.datasets import parse_data_cfg
from utils.errors import OptionError
from utils.items import image_files


def test_unlabelled_photos_compress_a_trained_model(tiny_data, tmp_path):
    photos = str(Path(parse_data_cfg(tiny_data)['train']))
    args = tiny_args(tiny_data, tmp_path, 'u') + [
        '--weights', str(ROOT / 'weights' / 'yolov3-mini.pt'), '--images', photos,
        '--keep-bflops', '0.7', '--calib', '4', '--holdout', '0.25', '--skip', 'latency']
    report = compress.run(**vars(compress.parse_opt(args)))
    out = tmp_path / 'u'
    state = json.loads((out / 'state.json').read_text())
    assert state['opt']['method'] == 'search'  # the default with --images
    assert 'sparse' not in state['done']  # sparse training needs labels
    train = (out / 'images_train.txt').read_text().split()
    held = (out / 'images_holdout.txt').read_text().split()
    assert len(held) == 8 and not set(train) & set(held)
    assert sorted(train + held) == sorted(str(f.resolve()) for f in image_files(photos))
    for stage in ('finetune', 'qat'):
        opt = yaml.safe_load((out / stage / 'opt.yaml').read_text())
        assert opt['teacher_only'] and opt['KDstr'] == 6 and opt['images'] == [str(
            out / 'images_train.txt')]
        assert opt['t_weights'] == str(ROOT / 'weights' / 'yolov3-mini.pt')
    finetune_hyp = yaml.safe_load((out / 'finetune' / 'hyp.yaml').read_text())
    assert finetune_hyp['lr0'] == 0.0005  # data/hyp.recover.yaml
    rows = {r['stage']: r for r in report['stages']}
    assert rows['prune']['vs_baseline']['bflops'] <= 0.7
    for stage in ('prune', 'finetune', 'qat', 'export (onnxruntime)'):
        assert 0 <= rows[stage]['agree50'] <= 1 and 'map50' in rows[stage]
    assert 'agree50' not in rows['baseline']


@pytest.mark.parametrize('extra, message', [
    (['--method', 'search'], '--method search measures each cut on photos: give --images'),
    (['--images', 'x', '--holdout', '1'], '--holdout is a share'),
    (['--images', 'x', '--KDstr', '3'], '--KDstr 3 needs labels'),
])
def test_label_free_options_are_checked_first(tiny_data, tmp_path, extra, message):
    args = tiny_args(tiny_data, tmp_path, 'bad') + extra
    with pytest.raises(OptionError, match=message):
        compress.run(**vars(compress.parse_opt(args)))
    assert not (tmp_path / 'bad').exists()


def test_a_darknet_baseline_is_scored_with_its_cfg(tiny_data, tmp_path):
    """The issue's command starts from a .weights file: its rows are scored with --cfg (the
    evaluation had passed no cfg, and a .weights file cannot load without one)."""
    model = load_model(str(ROOT / 'weights' / 'yolov3-mini.pt'))
    cfg, weights = tmp_path / 'mini.cfg', tmp_path / 'mini.weights'
    save_cfg(model.blocks, cfg)
    save_darknet_weights(model, weights)
    opt = vars(compress.parse_opt(tiny_args(tiny_data, tmp_path, 'w')))
    run = compress.Run(tmp_path / 'w', opt)
    from_darknet = evaluate(weights, opt, run, 'darknet', cfg)
    assert from_darknet == evaluate(ROOT / 'weights' / 'yolov3-mini.pt', opt, run, 'pt')
    assert from_darknet['map50'] > 0
