"""Where the output goes wrong: a read-only folder or a full disk gets one line naming the
folder or file, before any work where it can be known up front, and never a partial file under
a final name (the workspace and the runner: tests/bad_input.py).
"""
import re

import pytest

from tests.bad_input import PRUNE, T, method_args, one_line, probe_id, run_main
from tests.conftest import ROOT

# Each command that writes, with valid arguments apart from where it writes.
WRITERS = [('train', ['--data', '{data}', '--weights', '{mini}', '--img-size', '64']),
           ('test', ['--data', '{data}', '--weights', '{mini}', '--img-size', '64']),
           ('detect', ['--weights', '{mini}', '--source', '{ok}', '--img-size', '64']),
           ('export', ['--weights', '{mini}', '--img-size', '64']),
           ('export', ['--weights', '{mini}', '--format', 'darknet']),
           ('export', ['--weights', '{qpt}', '--format', 'c', '--img-size', '64']),
           ('ptq', ['--weights', '{mini}', '--data', '{data}', '--img-size', '64', '--calib', '8',
                    '--no-eval']),
           ('sensitivity', ['--weights', '{mini}', '--data', '{data}', '--img-size', '64',
                            '--calib', '8', '--subset', '8']),
           ('export_int', ['--weights', '{qpt}']),
           *[(m, ['--weights', '{mini}', '--data', '{data}', '--no-eval', '--latency-runs', '0',
                  *method_args(m)]) for m in PRUNE]]
RO = r'Permission denied.*/ro/'
READ_ONLY = [
    *[(c, [*a, '--project', '{ro}/runs'], 1, RO + 'runs') for c, a in WRITERS],
    *[(c, [*a, '--project', '{ro}', '--name', 'exp', '--exist-ok'], 1, RO + 'exp')
      for c, a in WRITERS],
    ('compress', ['--weights', '{mini}', '--data', '{data}', '--project', '{ro}/runs'], 1,
     RO + 'runs'),
    ('kmeans', ['--data', '{data}', '--cfg', 'cfg/yolov3-mini.cfg', '--out', '{ro}/k.cfg',
                '--generations', '5'], 1, RO + r'k\.cfg'),
    ('kmeans', ['--data', '{data}', '--cfg', 'cfg/yolov3-mini.cfg', '--out', '{ro}/new/k.cfg',
                '--generations', '5'], 1, RO + 'new'),
    ('int_runtime', ['--weights', '{intjson}', '--source', '{ok}', '--dump', '{ro}/dump'], 1,
     RO + 'dump'),
    ('int_runtime', ['--weights', '{intjson}', '--source', '{ok}', '--dump', '{ro}/exp'], 1,
     RO + r'exp/input\.npy'),
]


@pytest.mark.parametrize('command,args,code,message', READ_ONLY,
                         ids=[probe_id(p) for p in READ_ONLY])
def test_a_read_only_folder_gets_one_line_before_any_work(command, args, code, message, ws,
                                                          capsys, monkeypatch):
    """A read-only output folder (for root too) fails at once, naming the folder."""
    from tests.limits import read_only
    with read_only(ws['ro'], ws['ro'] / 'exp'):
        one_line(command, args, code, message, ws, capsys, monkeypatch)


FULL = r'(File too large|write failed).*: .*'
DISK_FULL = [  # (command, arguments, bytes a file may take, the file the error names)
    ('export', ['--weights', '{mini}', '--img-size', '64'], 2 ** 16, r'mini\.onnx'),
    ('export', ['--weights', '{mini}', '--format', 'darknet'], 2 ** 16, r'mini\.weights'),
    ('export', ['--weights', '{qpt}', '--format', 'c', '--img-size', '64'], 2 ** 16,
     r'weights\.c'),
    ('export_int', ['--weights', '{qpt}'], 2 ** 16, r'q_int\.npz'),
    # workers 0: the limit holds for every file, the loader's shared memory too
    ('ptq', [*WRITERS[6][1], '--workers', '0'], 2 ** 16, r'mini_ptq_mse\.pt'),
    ('detect', ['--weights', '{mini}', '--source', '{ok}', '--img-size', '64'], 256,
     r'ok\.jpg'),
    ('kmeans', ['--data', '{data}', '--cfg', 'cfg/yolov3-mini.cfg', '--out', '{out}/k.cfg',
                '--generations', '5'], 1024, r'k\.cfg'),
    ('int_runtime', ['--weights', '{intjson}', '--source', '{ok}', '--dump', '{out}/dump',
                     '--img-size', '64'], 2 ** 12, r'dump/input\.npy'),
    *[(m, [*a, '--project', '{out}'], 2 ** 16, r'\.weights') for m, a in WRITERS[-6:]],
]


@pytest.mark.parametrize('command,args,limit,name', DISK_FULL,
                         ids=[probe_id(p) for p in DISK_FULL])
def test_a_full_disk_gets_one_line_and_leaves_no_partial_file(command, args, limit, name, ws,
                                                              capsys, monkeypatch):
    """The disk fills up while the result is written: one line naming the file, and nothing
    under a final name (the files of a set already written are removed with it)."""
    from tests.limits import disk_full_after
    args = args if '--project' in args or command in ('kmeans', 'int_runtime') else \
        [*args, '--project', '{out}']
    with disk_full_after(limit):
        one_line(command, args, 1, FULL + name, ws, capsys, monkeypatch)


def test_every_probe_is_different():
    for table in (READ_ONLY, DISK_FULL):
        ids = [probe_id(p) for p in table]
        assert len(set(ids)) == len(ids)


def test_too_little_disk_for_the_checkpoints_fails_before_the_first_epoch(ws, capsys,
                                                                         monkeypatch):
    import shutil
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, 'disk_usage', lambda p: real(p)._replace(free=10 ** 6))
    one_line('train', ['--data', '{data}', '--weights', '{mini}', *T], 1,
                                 r'weights: 1\.0 MB free .*last\.pt and best\.pt', ws, capsys,
                                 monkeypatch)


def test_a_disk_that_fills_up_during_training_loses_no_finished_file(tiny_data, tmp_path,
                                                                     capsys, monkeypatch):
    """The first checkpoint does not fit: one line naming it, no temporary files, and what
    was written before (options, results.csv) is whole."""
    import csv

    from tests.limits import disk_full_after
    monkeypatch.chdir(ROOT)
    with disk_full_after(2 ** 18):
        code = run_main('train', ['--data', str(tiny_data), '--img-size', '64', '--epochs', '1',
                                  '--batch-size', '8', '--workers', '0', '--project',
                                  str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1 and re.search(r'error: File too large: .*weights/best\.pt', err), err[-800:]
    run = tmp_path / 'exp'
    assert not [p for p in run.rglob('.*') if p.is_file()]
    assert not list((run / 'weights').iterdir())
    with open(run / 'results.csv', newline='') as f:
        assert [r['epoch'] for r in csv.DictReader(f)] == ['0']


def test_a_read_only_weights_folder_fails_before_the_first_epoch(ws, tmp_path, capsys,
                                                                 monkeypatch):
    """The run folder takes files but its weights/ does not: refused before any epoch, not
    when the first checkpoint is due."""
    from tests.limits import read_only
    weights = tmp_path / 'exp' / 'weights'
    weights.mkdir(parents=True)
    with read_only(weights):
        one_line('train', ['--data', '{data}', '--weights', '{mini}',
                                               '--project', str(tmp_path), '--exist-ok'], 1,
                                     r'Permission denied .*must be writable.*exp/weights', ws,
                                     capsys, monkeypatch)
    assert not [p for p in (tmp_path / 'exp').rglob('*') if p.is_file()]
