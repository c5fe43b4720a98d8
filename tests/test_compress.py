"""compress.py: the whole pipeline on tiny settings writes a complete report whose artefacts
load, and a run killed mid-stage continues at that stage when the same command is run again."""
import json
import signal
import subprocess
import sys
import time

import numpy as np
import onnxruntime as ort
import pytest
import torch
import yaml

import compress
from quantize.loader import load_model
from utils import datasets
from utils.datasets import parse_data_cfg
from tests.conftest import ROOT


def tiny_args(data, project, name):
    return ['--data', str(data), '--img-size', '128', '--batch-size', '8', '--workers', '0',
            '--device', 'cpu', '--epochs-sparse', '1', '--epochs-finetune', '1',
            '--epochs-qat', '1', '--percent', '0.3', '--keep-bflops', '0', '--latency-runs', '2',
            '--project', str(project), '--name', name]


def test_pipeline_writes_a_report_whose_artefacts_load(tiny_data, tmp_path):
    hyps = {}  # each training stage's own hyp file reaches train.py
    for stage, name, lr0 in (('sparse', 'scratch', 0.001), ('finetune', 'finetune', 0.0001)):
        hyps[stage] = tmp_path / f'{stage}.yaml'
        hyps[stage].write_text((ROOT / 'data' / f'hyp.{name}.yaml').read_text().replace(
            f'lr0: {lr0}', f'lr0: {lr0 * 7}'))
    args = tiny_args(tiny_data, tmp_path, 'c') + ['--keep-bflops', '0.6', '--rank', 'layer',
                                                  '--sr-flops', '--img-size-sparse', '96',
                                                  '--hyp-sparse', str(hyps['sparse']),
                                                  '--hyp-finetune', str(hyps['finetune'])]
    report = compress.run(**vars(compress.parse_opt(args)))
    out = tmp_path / 'c'
    sparse_opt = yaml.safe_load((out / 'sparse' / 'opt.yaml').read_text())
    assert sparse_opt['img_size'] == [96, 96, 128]  # trained at 96, evaluated at --img-size
    assert sparse_opt['cache_images']  # 32 tiny images fit in RAM
    for stage, lr0 in (('sparse', 0.007), ('finetune', 0.0007)):
        assert yaml.safe_load((out / stage / 'hyp.yaml').read_text())['lr0'] == pytest.approx(lr0)
    assert json.loads((out / 'report.json').read_text())['stages'] == report['stages']
    stages = [r['stage'] for r in report['stages']]
    assert stages == ['baseline', 'sparse', 'prune', 'finetune', 'qat', 'export (onnxruntime)',
                      'export (openvino)']  # openvino is in the dev extra
    for r in report['stages']:
        assert {'params', 'bflops', 'size_mb', 'map50', 'map50_95', 'vs_baseline'} <= set(r)
        if r['stage'] in ('baseline', 'prune', 'finetune', 'qat'):
            assert r['latency_torch_ms'] > 0 and r['latency_ort_ms'] > 0
            assert r['latency_ov_ms'] > 0
    rows = {r['stage']: r for r in report['stages']}
    assert rows['prune']['bflops'] < rows['baseline']['bflops']
    assert rows['qat']['int8'] and not rows['finetune']['int8']
    assert 0.5 < rows['prune']['vs_baseline']['bflops'] <= 0.6
    kept = json.loads((out / 'state.json').read_text())['done']['prune']['channels']
    assert all(c['kept'] % 8 == 0 or c['kept'] == c['channels'] for c in kept)  # --round 8
    assert any(c['kept'] < c['channels'] for c in kept)
    with pytest.raises(ValueError, match='--round'):
        compress.run(**vars(compress.parse_opt(args + ['--name', 'r0'])) | {'round': 0})
    for png in ('map_vs_bflops.png', 'gammas.png', 'channels.png'):
        assert (out / png).stat().st_size > 1000
    assert '| qat (int8) |' in (out / 'report.md').read_text()

    x = torch.rand(1, 3, 128, 128)
    for stage in ('sparse', 'prune', 'finetune', 'qat'):
        with torch.no_grad():
            assert torch.isfinite(load_model(rows[stage]['weights']).eval()(x)[0]).all()
    files = report['files']
    cfg, weights = files['darknet']
    assert load_model(weights, cfg).nc == 6
    for key in ('onnx_onnxruntime', 'onnx_tensorrt'):
        sess = ort.InferenceSession(files[key][0], providers=['CPUExecutionProvider'])
        boxes, scores = sess.run(None, {'images': x.numpy()})
        assert np.isfinite(scores).all() and scores.shape[-1] == 6
    assert abs(rows['export (openvino)']['map50'] - rows['qat']['map50']) < 0.05  # 7-bit weights


def test_killed_run_resumes_at_the_stage_it_was_in(tiny_data, tmp_path):
    args = tiny_args(tiny_data, tmp_path, 'k')
    args[args.index('--epochs-finetune') + 1] = '3'
    cmd = [sys.executable, str(ROOT / 'compress.py')] + args
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = tmp_path / 'k' / 'finetune' / 'weights' / 'last.pt'
    deadline = time.time() + 300
    while not last.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)  # let the atomic save finish
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    state = json.loads((tmp_path / 'k' / 'state.json').read_text())
    assert list(state['done']) == ['baseline', 'sparse', 'prune']  # killed inside fine-tuning

    again = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-2000:]
    log = again.stdout + again.stderr
    assert 'resuming' in log and 'done baseline, sparse, prune' in log
    assert '--- compress: sparse ---' not in log  # finished stages are not redone
    assert 'at epoch' in log  # train.py continued the fine-tune from its last.pt
    state = json.loads((tmp_path / 'k' / 'state.json').read_text())
    assert list(state['done']) == [s for s in compress.STAGES if s != 'sparse24']  # not asked for
    sparse_hyp = yaml.safe_load((tmp_path / 'k' / 'sparse' / 'hyp.yaml').read_text())
    assert sparse_hyp['lr0'] == 0.003  # data/hyp.sparse.yaml by default
    assert not (tmp_path / 'k2').exists()


def test_training_images_are_cached_only_when_they_fit(tiny_data, tmp_path, monkeypatch):
    """compress leaves the choice to train.py (one rule, Trainer._cache) unless --no-cache;
    train.py caches when the decoded images take under a quarter of the free memory and says
    what it did in opt.yaml."""
    opt = vars(compress.parse_opt(tiny_args(tiny_data, tmp_path, 'm')))
    assert compress.Run(tmp_path / 'm', opt).cache is None
    assert compress.Run(tmp_path / 'm', opt | {'no_cache': True}).cache is False
    train_set = parse_data_cfg(tiny_data)['train']
    need = datasets.cache_bytes(train_set, 6, 128)
    assert datasets.fits_in_ram(train_set, 6, 128)
    monkeypatch.setattr(datasets, 'available_memory', lambda: 4 * need)  # exactly a quarter
    assert not datasets.fits_in_ram(train_set, 6, 128)
    monkeypatch.setattr(datasets, 'available_memory', lambda: None)  # unknown: no cache
    assert not datasets.fits_in_ram(train_set, 6, 128)


def test_the_fine_tune_distills_only_when_asked():
    """--KDstr defaults to 0 (no strategy beat plain fine-tuning, docs/results/distillation.md);
    a strategy given distills from the baseline."""
    from types import SimpleNamespace
    baseline = {'cfg': 'b.cfg', 'weights': 'b.pt'}
    for argv, want in (([], {}), (['--KDstr', '6'], {'t_cfg': 'b.cfg', 't_weights': 'b.pt',
                                                     'KDstr': 6, 'kd_weight': 1.0})):
        run = SimpleNamespace(opt=vars(compress.parse_opt(argv)),
                              state={'done': {'baseline': baseline}})
        assert compress.distillation(run) == want
