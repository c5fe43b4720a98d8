"""The reference toolkit's README command lines, run from the repository root as written: only
their `...` are filled in (a tiny copy of the built-in dataset, yolov3-mini at 64 px, small
batches). Outputs go to a scratch folder through YOLO_RUNS, the one thing set around them.
Independent commands run two at a time (one thread each): most of a short command is Python
start-up and plotting, which a second process overlaps. A separate CI step runs this module
(`make test-slow`).
"""
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from data.drawn import generate
from models import Darknet
from models.weights import load_checkpoint, save_darknet_weights
from tests.conftest import ROOT, randomize_bn

pytestmark = pytest.mark.slow


@pytest.fixture(scope='module')
def seed(tmp_path_factory):
    """D (a .data of 8 + 4 images), C (yolov3-mini at 64 px), COCO (darknet weights of C for
    80 classes) and the scratch runs folder."""
    root = tmp_path_factory.mktemp('seed')
    generate(root / 'shapes', n_train=8, n_val=4, img_size=96, verbose=False)
    data = root / 'seed.data'
    data.write_text(f'classes=6\ntrain=shapes/train.txt\nvalid=shapes/val.txt\n'
                    f'names={ROOT / "data" / "shapes.names"}\n')
    text = (ROOT / 'cfg' / 'yolov3-mini.cfg').read_text()
    cfg = root / 'mini64.cfg'
    cfg.write_text(text.replace('width=320', 'width=64').replace('height=320', 'height=64'))
    coco = text.replace('classes=6', 'classes=80').replace('filters=33', 'filters=255')
    torch.manual_seed(0)
    save_darknet_weights(randomize_bn(Darknet(coco)), root / 'mini64-coco.weights')
    return {'D': str(data), 'C': str(cfg), 'COCO': str(root / 'mini64-coco.weights'),
            'runs': root / 'runs'}


def run(seed, command, name=None, threads=2):
    """One README line from the repository root (with its `...` values from ``seed``; ``name``,
    if given, becomes YOLO_RUNS's sub-folder); returns (CompletedProcess, its runs folder)."""
    words = [seed.get(w, w) for w in command.split()]
    runs = seed['runs'] / name if name else seed['runs']
    env = {**os.environ, 'YOLO_RUNS': str(runs), 'OMP_NUM_THREADS': str(threads)}
    r = subprocess.run([sys.executable] + words[1:], cwd=ROOT, capture_output=True, text=True,
                       env=env, timeout=600)
    assert r.returncode == 0, f'{command}\n{r.stderr[-3000:]}'
    assert 'Traceback' not in r.stderr
    return r, runs


def run_all(seed, commands):
    """Independent commands two at a time, each in its own runs folder; their runs folders."""
    with ThreadPoolExecutor(2) as pool:
        done = pool.map(lambda kc: run(seed, kc[1], name=str(kc[0]), threads=1),
                        commands.items())
        return {key: runs for key, (_, runs) in zip(commands, done)}


def last_run(runs, task):
    return max((runs / task).iterdir(), key=os.path.getmtime)


@pytest.fixture(scope='module')
def trained(seed):
    """python3 train.py --data ... -pt --batch-size ... --weights ... --cfg ..."""
    r, runs = run(seed, 'python3 train.py --data D -pt --batch-size 8 --weights COCO --cfg C',
                  name='trained')
    assert 'the file is for 80 classes' in r.stderr  # -pt says which layers started fresh
    return str(last_run(runs, 'train') / 'weights' / 'last.pt')


@pytest.fixture(scope='module')
def sparse(seed):
    """The three sparse trainings; returns {mode: last.pt}."""
    runs = run_all(seed, {f'sparse{m}': f'python3 train.py --data D -pt --batch-size 8 '
                                         f'--weights COCO --cfg C -sr --s 0.001 --prune {m}'
                          for m in (0, 1, 2)})
    return {m: str(last_run(runs[f'sparse{m}'], 'train') / 'weights' / 'last.pt')
            for m in (0, 1, 2)}


def test_train_from_coco_weights_of_another_class_count(trained):
    ckpt = load_checkpoint(trained)
    assert ckpt['epoch'] == 9 and ckpt['opt']['pt']  # ten epochs, train.py's default
    assert ckpt['opt']['img_size'] == [64]  # the cfg's own size


def test_sparse_training_modes(sparse):
    for mode, path in sparse.items():
        assert load_checkpoint(path)['opt']['prune'] == mode


def test_prune_scripts(seed, sparse):
    for mode in (0, 1, 2):
        seed[f'W{mode}'] = sparse[mode]
    runs = run_all(seed, {
        'normal': 'python3 normal_prune.py --cfg C --data D --weights W0 --percent 0.3',
        'regular': 'python3 regular_prune.py --cfg C --data D --weights W0 --percent 0.3',
        'shortcut': 'python3 shortcut_prune.py --cfg C --data D --weights W1 --percent 0.3',
        'slim': 'python3 slim_prune.py --cfg C --data D --weights W1 --percent 0.3',
        'layer': 'python3 layer_prune.py --cfg C --data D --weights W2 --shortcut 1',
        'layer_channel': 'python3 layer_channel_prune.py --cfg C --data D --weights W1 '
                         '--shortcut 1 --percent 0.3'})
    for method, folder in runs.items():
        report = last_run(folder, 'prune') / 'prune.json'
        assert report.is_file() and f'_{method}_' in report.read_text(), method


QAT = ['--quantized 1', '--quantized 2', '--quantized 3', '--quantized 3 --BN_Fold',
       '--quantized 3 --BN_Fold --FPGA']


def test_quantization_aware_training(seed, trained):
    seed['W'] = trained
    runs = run_all(seed, {flags: f'python train.py --data D --batch-size 8 --weights W --cfg C '
                                 f'--img-size 64 --epochs 1 {flags}' for flags in QAT})
    for flags, folder in runs.items():
        ckpt = load_checkpoint(last_run(folder, 'train') / 'weights' / 'last.pt')
        assert ckpt['quant']['mode'] == int(flags.split()[1])
        assert ckpt['quant']['bn_fold'] == ('--BN_Fold' in flags)
        assert ckpt['quant']['fpga'] == ('--FPGA' in flags)


def test_distillation(seed, trained):
    seed['W'], seed['T'], seed['TW'] = trained, seed['C'], trained
    runs = run_all(seed, {k: f'python train.py --data D --batch-size 8 --weights W --cfg C '
                             f'--img-size 64 --epochs 1 --t_cfg T --t_weights TW --KDstr {k}'
                          for k in (1, 2, 3, 4, 5)})
    for k, folder in runs.items():
        with open(last_run(folder, 'train') / 'results.csv') as f:
            assert 'kd_' in f.readline(), k


def test_test_and_detect(seed, trained):
    seed['W'] = trained
    r, _ = run(seed, 'python3 test.py --data D --cfg C --weights W', name='test')
    assert 'mAP@0.5' in r.stdout
    seed['S'] = str(seed['runs'].parent / 'shapes' / 'images' / 'val')
    _, runs = run(seed, 'python3 detect.py --data D --cfg C --weights W --source S', name='det')
    assert len(list(last_run(runs, 'detect').glob('*.jpg'))) == 4
