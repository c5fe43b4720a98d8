"""The prune command (python3 -m prune --method, and the six root scripts) from the command
line: outputs, report, errors, and that what they write loads in train.py, test.py and detect.py."""
import json
import subprocess
import sys

import pytest
import torch

import detect
import test as evaluation
import train
from models.weights import load_checkpoint, load_darknet_weights, load_model, save_checkpoint
from prune.runner import run_method
from tests.conftest import ROOT, _built
from tests.test_prune import zero_some_gammas

NAMES = ['circle', 'square', 'triangle', 'star', 'cross', 'ring']


@pytest.fixture(scope='module')
def sparse_weights(tmp_path_factory):
    """A yolov3-mini checkpoint with a third of its gammas at zero, as after sparse training."""
    model = zero_some_gammas(_built('yolov3-mini'), share=0.3)
    path = tmp_path_factory.mktemp('sparse') / 'sparse.pt'
    save_checkpoint({'cfg': model.cfg_text, 'model': model.state_dict(), 'names': NAMES,
                     'opt': {'cfg': 'cfg/yolov3-mini.cfg'}}, path)
    return path


def cli(args, module=False):
    cmd = [sys.executable] + (['-m', args[0]] if module else [str(ROOT / args[0])]) + args[1:]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)


def common(data, weights, project, name):
    return ['--data', str(data), '--weights', str(weights), '--img-size', '128',
            '--latency-runs', '2', '--workers', '0', '--project', str(project), '--name', name]


def test_slim_prune_script_writes_a_working_model(tiny_data, sparse_weights, tmp_path):
    r = cli(['slim_prune.py', '--percent', '0.5'] +
            common(tiny_data, sparse_weights, tmp_path, 'slim'))
    assert r.returncode == 0, r.stderr
    out = tmp_path / 'slim'
    report = json.loads((out / 'prune.json').read_text())
    for stage in ('original', 'masked', 'pruned'):
        assert set(report[stage]) >= {'params', 'bflops', 'map50', 'map50_95', 'latency_ms'}
    assert report['pruned']['bflops'] < report['original']['bflops']
    assert report['pruned']['params'] < report['original']['params']
    assert report['masked']['map50'] == pytest.approx(report['pruned']['map50'], abs=1e-3)
    assert report['max_abs_diff_pruned_vs_masked'] < 1e-3
    assert report['cfg'].endswith('yolov3-mini_slim_0.5.cfg')
    assert 'channels kept' in r.stdout and 'pruned/original' in r.stdout

    from_pt = load_model(report['pt'])
    from_darknet = load_model(report['weights'], report['cfg'])
    x = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        assert torch.equal(from_pt.eval()(x)[0], from_darknet.eval()(x)[0])
    m = evaluation.run(data=str(tiny_data), weights=report['pt'], img_size=128, workers=0,
                       project=str(tmp_path), name='test', plots=False, verbose=False)
    assert m['map50'] == pytest.approx(report['pruned']['map50'], abs=1e-3)
    detect.run(source=str(tiny_data.parent / 'shapes' / 'images' / 'val'), weights=report['pt'],
               img_size=128, project=str(tmp_path), name='detect')
    assert len(list((tmp_path / 'detect').glob('*.jpg'))) == 8


def test_pruned_model_fine_tunes(tiny_data, sparse_weights, tmp_path):
    report = run_method('slim', percent=0.5, data=str(tiny_data), weights=str(sparse_weights),
                            img_size=128, workers=0, latency_runs=0, eval=False,
                            project=str(tmp_path), name='p')
    assert report['original']['map50'] is None
    train.run(cfg=report['cfg'], weights=report['pt'], data=str(tiny_data), epochs=1,
              batch_size=8, img_size=[128], workers=0, notest=True, project=str(tmp_path),
              name='ft')
    tuned = load_checkpoint(tmp_path / 'ft' / 'weights' / 'last.pt')
    assert tuned['cfg'] == load_checkpoint(report['pt'])['cfg']


@pytest.mark.parametrize('method,args', [
    ('normal', ['--percent', '0.3']),
    ('regular', ['--percent', '0.3', '--round', '4']),
    ('shortcut', ['--percent', '0.3', '--rank', 'layer']),
    ('layer', ['--shortcuts', '2']),
    ('layer_channel', ['--percent', '0.3', '--shortcuts', '1']),
])
def test_every_method_runs_from_the_one_prune_entry(method, args, tiny_data, sparse_weights,
                                                    tmp_path):
    r = cli(['prune', '--method', method] + args +
            common(tiny_data, sparse_weights, tmp_path, 'p') + ['--no-eval'], module=True)
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / 'p' / 'prune.json').read_text())
    assert report['pruned']['bflops'] < report['original']['bflops']
    darknet = load_model(report['weights'], report['cfg'])
    load_darknet_weights(darknet, report['weights'])  # the file holds exactly the cfg's floats
    if 'layer' in method:
        assert len(report['dropped_blocks']) == int(args[args.index('--shortcuts') + 1])


def test_too_high_percent_is_one_line_and_exit_1(tiny_data, sparse_weights, tmp_path):
    r = cli(['normal_prune.py', '--percent', '0.999', '--no-eval'] +
            common(tiny_data, sparse_weights, tmp_path, 'x'))
    assert r.returncode == 1
    assert r.stderr.strip().count('\n') == 0 and 'Traceback' not in r.stderr
    assert 'the highest --percent that works is' in r.stderr
    r = cli(['layer_prune.py', '--shortcuts', '99', '--no-eval'] +
            common(tiny_data, sparse_weights, tmp_path, 'y'))
    assert r.returncode == 1 and 'residual blocks' in r.stderr and 'Traceback' not in r.stderr
