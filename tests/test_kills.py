"""Kills at the worst moment and runs started together: the real process is SIGKILLed just
before it renames a finished file into place (tests/pause_at_rename.py stops it there), and what
is left is checked: nothing partial under a final name, and a killed run resumes."""
import csv
import signal
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import onnx
import pytest

from models.weights import load_checkpoint, save_checkpoint
from tests.conftest import ROOT, _built


def killed_at_rename(args, pattern, timeout=300):
    """Run a script under tests/pause_at_rename.py and SIGKILL it when it pauses before the
    rename that pattern names; returns its stderr so far."""
    p = subprocess.Popen([sys.executable, 'tests/pause_at_rename.py', pattern, *map(str, args)],
                         cwd=ROOT, text=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    lines = []
    for line in p.stderr:  # until the pause line or the end
        lines.append(line)
        if line.startswith('paused before renaming'):
            p.send_signal(signal.SIGKILL)
            break
    p.wait(timeout)
    assert p.returncode == -signal.SIGKILL, ''.join(lines)[-1500:]
    return ''.join(lines)


def run_script(args, timeout=300):
    r = subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, capture_output=True,
                       text=True, timeout=timeout)
    assert r.returncode == 0, r.stderr[-1500:]
    return r.stderr


def visible(folder):
    return sorted(p.name for p in Path(folder).iterdir() if not p.name.startswith('.'))


@pytest.fixture(scope='module')
def qat_checkpoint(tmp_path_factory):
    from quantize.config import QuantConfig
    from tests.test_export_int import quantized
    model = _built('yolov3-mini')
    q = quantized('yolov3-mini', QuantConfig(mode=3))
    path = tmp_path_factory.mktemp('q') / 'q.pt'
    save_checkpoint({'cfg': model.cfg_text, 'model': q.state_dict(), 'quant': q.quant_config},
                    path)
    return path


def test_a_kill_while_an_onnx_file_is_written_leaves_no_partial_file(tmp_path):
    killed_at_rename(['export.py', '--img-size', '64', '--project', tmp_path, '--name', 'x'],
                     '*.onnx')
    assert visible(tmp_path / 'x') == []  # the hidden temporary file may stay


def test_a_kill_inside_a_darknet_export_leaves_no_export_json(tmp_path):
    """The cfg is whole; the weights are not there; export.json, written last, is missing, so
    the set reads as incomplete."""
    killed_at_rename(['export.py', '--format', 'darknet', '--project', tmp_path, '--name', 'x'],
                     '*.weights')
    assert visible(tmp_path / 'x') == ['yolov3-mini.cfg']


def test_a_kill_inside_an_integer_export_leaves_no_json(qat_checkpoint, tmp_path):
    killed_at_rename(['quantize/export_int.py', '--weights', qat_checkpoint, '--project',
                      tmp_path, '--name', 'x'], '*_int.json')
    assert visible(tmp_path / 'x') == ['q_int.npz']  # the json marks a whole set


def test_a_kill_while_the_c_folder_is_swapped_in_keeps_it_out_and_a_rerun_mends_it(
        qat_checkpoint, tmp_path):
    args = ['export.py', '--weights', qat_checkpoint, '--format', 'c', '--img-size', '64',
            '--project', tmp_path, '--name', 'x']
    killed_at_rename(args, 'q_c')
    assert visible(tmp_path / 'x') == []  # the finished folder waits under a hidden name
    assert [p.name for p in (tmp_path / 'x').iterdir() if p.name.startswith('.q_c.tmp')]
    run_script([*args, '--exist-ok'])
    assert visible(tmp_path / 'x') == ['export.json', 'q_c']
    assert 'model.c' in visible(tmp_path / 'x' / 'q_c')


def test_a_kill_inside_a_prune_save_leaves_no_prune_json(tmp_path):
    killed_at_rename(['normal_prune.py', '--percent', '0.3', '--no-eval',
                      '--latency-runs', '0', '--project', tmp_path, '--name', 'x'], 'prune.json')
    left = visible(tmp_path / 'x')
    assert 'prune.json' not in left and len(left) == 3, left  # cfg, weights, pt: no marker
    pt = next((tmp_path / 'x').glob('*.pt'))
    err = run_script(['test.py', '--weights', pt, '--img-size', '64', '--project', tmp_path])
    assert 'a prune run that did not finish' in err  # said where the set is next used


def rows(results):
    with open(results, newline='') as f:
        return [int(r['epoch']) for r in csv.DictReader(f)]


@pytest.mark.slow
def test_a_run_killed_while_saving_resumes_and_ends_with_every_epoch_once(tiny_data, tmp_path):
    """Killed as epoch 1's last.pt is renamed (its results row written): --resume (no path)
    finds that run, redoes epoch 1, and the finished run has epochs 0, 1, 2 once each and a
    best.pt."""
    train = ['train.py', '--data', tiny_data, '--img-size', '64', '--batch-size', '8',
             '--epochs', '3', '--workers', '0', '--project', tmp_path]
    killed_at_rename(train, 'last.pt:2')
    run = tmp_path / 'exp'
    assert rows(run / 'results.csv') == [0, 1]
    assert load_checkpoint(run / 'weights' / 'last.pt')['epoch'] == 0
    err = run_script(['train.py', '--resume', '--project', tmp_path])
    assert f'newest unfinished run under {tmp_path} is {run}' in err
    assert rows(run / 'results.csv') == [0, 1, 2]
    best = load_checkpoint(run / 'weights' / 'best.pt')
    assert best.get('optimizer') is None  # stripped: the run finished
    assert not [p for p in (run / 'weights').iterdir() if p.name.startswith('.')]


def claim(project):
    from utils.runs import increment_path
    return str(increment_path(project, 'exp'))


def test_runs_started_together_never_share_a_folder(tmp_path):
    with ProcessPoolExecutor(4) as pool:
        folders = list(pool.map(claim, [tmp_path] * 40))
    assert len(set(folders)) == 40


def test_two_exports_into_one_folder_at_once_leave_one_whole_file(tmp_path):
    args = [sys.executable, 'export.py', '--img-size', '64', '--project', str(tmp_path),
            '--name', 'x', '--exist-ok']
    procs = [subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for p in procs:
        assert p.wait(300) == 0, p.stderr.read()[-1500:]
    assert sorted(p.name for p in (tmp_path / 'x').iterdir()) == ['export.json',
                                                                   'yolov3-mini.onnx']
    onnx.checker.check_model(onnx.load(str(tmp_path / 'x' / 'yolov3-mini.onnx')))


def test_a_kill_while_a_dataset_is_written_leaves_no_split_list_and_a_rerun_is_whole(tmp_path):
    """The drawn-shapes writer: a split's folders move into place only when every file is
    written, and its list (what a .data points at) is written last."""
    args = ['data/make_shapes.py', '--out', tmp_path, '--n-train', '8', '--n-val', '4',
            '--img-size', '64', '--workers', '1']
    run_script(args)
    killed_at_rename(args, 'train:2')  # images/train replaced, labels/train not yet
    assert 'train.txt' not in visible(tmp_path) and 'val.txt' in visible(tmp_path)
    run_script(args)
    listed = (tmp_path / 'train.txt').read_text().split()
    assert len(listed) == 8 and all((tmp_path / p).is_file() for p in listed)
    for kind in ('images', 'labels', 'masks'):
        assert len(visible(tmp_path / kind / 'train')) == 8
    assert not [p for p in tmp_path.iterdir() if p.name.startswith('.')]  # no staging left
