"""The training loop: loss falls, overfitting works, resume is exact, DDP on gloo, hooks, errors."""
import csv
import os
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
import torch

import train
from data.drawn import draw_shape
from models import Darknet
from models.weights import (WeightsError, load_checkpoint, load_pretrained, save_checkpoint,
                            save_darknet_weights)
from tests.conftest import ROOT, cfg_path
from utils.hooks import HOOK_BUILDERS, TrainHook

FAST = {'nbs': 8, 'warmup_epochs': 0, 'lr0': 0.002, 'mosaic': 0.5}


def rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_loss_falls(tiny_data, tmp_path):
    m = train.run(data=str(tiny_data), epochs=4, batch_size=8, img_size=[128], hyp=FAST,
                  adam=True, project=str(tmp_path), workers=0, notest=True)
    r = rows(tmp_path / 'exp' / 'results.csv')
    assert [int(x['epoch']) for x in r] == [0, 1, 2, 3]
    assert float(r[-1]['total']) < 0.8 * float(r[0]['total'])
    for name in ('results.png', 'opt.yaml', 'hyp.yaml', 'weights/last.pt', 'weights/best.pt'):
        assert (tmp_path / 'exp' / name).exists(), name
    best = load_checkpoint(tmp_path / 'exp' / 'weights' / 'best.pt')
    assert 'optimizer' not in best and best['model']['module_list.0.conv.weight'].dtype == \
        torch.float16  # stripped for inference
    last = load_checkpoint(tmp_path / 'exp' / 'weights' / 'last.pt')
    assert m['map50'] == last['metrics']['map50'] and m['images'] == 8  # the final evaluation


def write_few(root, n=4, size=160, seed=0):
    """n images with two or three large shapes each, on noise; YOLO labels beside them."""
    rng = np.random.default_rng(seed)
    (root / 'images').mkdir(parents=True)
    (root / 'labels').mkdir(parents=True)
    for k in range(n):
        img = rng.integers(60, 120, (size, size, 3)).astype(np.uint8)
        lines = []
        for j in range(rng.integers(2, 4)):
            cls, radius = (k * 3 + j) % 6, int(rng.integers(18, 34))
            center = (int(rng.integers(radius, size - radius)), 40 + 50 * j)
            mask = np.zeros((size, size), np.uint8)
            draw_shape(mask, cls, center, radius, 1.0, 0.0, max(3, radius // 4))
            img[mask > 0] = (40 * cls + 20, 255 - 40 * cls, 128)
            ys, xs = np.nonzero(mask)
            x1, y1, x2, y2 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
            lines.append(f'{cls} {(x1 + x2) / 2 / size} {(y1 + y2) / 2 / size} '
                         f'{(x2 - x1) / size} {(y2 - y1) / size}')
        cv2.imwrite(str(root / 'images' / f'{k}.png'), img)
        (root / 'labels' / f'{k}.txt').write_text('\n'.join(lines) + '\n')


def test_overfits_a_handful_of_images(tmp_path):
    """Four images, no augmentation: the detector must learn them (mAP@0.5 > 0.9)."""
    write_few(tmp_path / 'few')
    data = tmp_path / 'few.data'
    data.write_text(f'classes=6\ntrain=few/images\nvalid=few/images\n'
                    f'names={ROOT / "data" / "shapes.names"}\n')
    hyp = {'nbs': 4, 'warmup_epochs': 0, 'lr0': 0.003, 'lrf': 0.05, 'mosaic': 0, 'hsv_h': 0,
           'hsv_s': 0, 'hsv_v': 0, 'translate': 0, 'scale': 0, 'fliplr': 0}
    m = train.run(data=str(data), epochs=300, batch_size=4, img_size=[160], hyp=hyp, adam=True,
                  project=str(tmp_path / 'runs'), workers=0, notest=True, nosave=True)
    assert m['map50'] > 0.9, m


def _train_cmd(data, project, epochs):
    return [sys.executable, 'train.py', '--data', str(data), '--epochs', str(epochs),
            '--batch-size', '8', '--img-size', '128', '--project', str(project), '--workers', '0',
            '--adam', '--notest', '--hyp', str(ROOT / 'data' / 'hyp.scratch.yaml')]


def test_sigkill_then_resume_continues_exactly(tiny_data, tmp_path):
    ref = subprocess.run(_train_cmd(tiny_data, tmp_path / 'ref', 3), cwd=ROOT,
                         capture_output=True, text=True)
    assert ref.returncode == 0, ref.stderr
    proc = subprocess.Popen(_train_cmd(tiny_data, tmp_path / 'cut', 3), cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = tmp_path / 'cut' / 'exp' / 'weights' / 'last.pt'
    deadline = time.time() + 120
    while not last.exists() and time.time() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)  # during the second epoch
    proc.wait()
    killed = load_checkpoint(last)  # atomic writes: whatever is there loads
    assert killed['epoch'] == 0
    r = subprocess.run([sys.executable, 'train.py', '--resume', str(last), '--workers', '0'],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert 'at epoch 1' in r.stderr
    resumed = rows(tmp_path / 'cut' / 'exp' / 'results.csv')
    reference = rows(tmp_path / 'ref' / 'exp' / 'results.csv')
    assert [x['epoch'] for x in resumed] == ['0', '1', '2']
    assert [float(x['lr']) for x in resumed] == pytest.approx([float(x['lr']) for x in reference])
    final = load_checkpoint(last)
    assert final['epoch'] == 2
    lrs = [g['lr'] for g in final['optimizer']['param_groups']]
    ref_lrs = [g['lr'] for g in load_checkpoint(tmp_path / 'ref' / 'exp' / 'weights' /
                                                'last.pt')['optimizer']['param_groups']]
    assert lrs == pytest.approx(ref_lrs)


def test_torchrun_two_cpu_processes(tiny_data, tmp_path):
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2'
           ] + _train_cmd(tiny_data, tmp_path, 1)[1:]
    cmd[cmd.index('--batch-size') + 1] = '16'  # 8 per process: 2 iterations each
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                       env={**os.environ, 'OMP_NUM_THREADS': '1'})
    assert r.returncode == 0, r.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ['exp']  # only rank 0 made a folder
    assert len(rows(tmp_path / 'exp' / 'results.csv')) == 1
    assert load_checkpoint(tmp_path / 'exp' / 'weights' / 'last.pt')['epoch'] == 0


class CountingHook(TrainHook):
    name = 'counting'

    def __init__(self, poison_epoch=None):
        self.steps, self.epoch, self.poison_epoch = 0, 0, poison_epoch

    def after_backward(self, model, epoch):
        assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
        self.steps += 1

    def extra_loss(self, model, imgs, preds, targets):
        value = float('nan') if self.epoch == self.poison_epoch else 0.0
        return {'extra': torch.tensor(value)}

    def on_epoch_end(self, model, epoch):
        self.epoch = epoch + 1
        return {'steps': self.steps}


@pytest.fixture
def hook():
    made = []
    HOOK_BUILDERS.append(lambda opt: made.append(CountingHook(opt.extra.get('poison'))) or made[-1])
    yield made
    HOOK_BUILDERS.pop()


def test_hooks_are_called_once_per_optimizer_step(tiny_data, tmp_path, hook):
    train.run(data=str(tiny_data), epochs=2, batch_size=8, img_size=[128], hyp=FAST,
              project=str(tmp_path), workers=0, notest=True, nosave=True)
    # 32 images / batch 8 = 4 batches an epoch, nbs 8 -> one optimizer step per batch
    assert hook[0].steps == 8
    assert [int(x['steps']) for x in rows(tmp_path / 'exp' / 'results.csv')] == [4, 8]


def test_non_finite_loss_stops_and_keeps_last_good(tiny_data, tmp_path, hook):
    with pytest.raises(train.TrainingError, match='loss became nan at epoch 1'):
        train.run(data=str(tiny_data), epochs=3, batch_size=8, img_size=[128], hyp=FAST,
                  project=str(tmp_path), workers=0, notest=True, extra={'poison': 1})
    assert load_checkpoint(tmp_path / 'exp' / 'weights' / 'last.pt')['epoch'] == 0


def test_pretrained_heads_of_another_class_count_start_fresh(tmp_path):
    src = Darknet(cfg_path('yolov3-mini'))
    path = tmp_path / 'six.pt'
    save_checkpoint({'cfg': src.cfg_text, 'model': src.state_dict()}, path)
    text = src.cfg_text.replace('classes=6', 'classes=2').replace('filters=33', 'filters=21')
    dst = Darknet(text)
    msg = load_pretrained(dst, path)
    heads = [f'module_list.{j - 1}' for j in dst.yolo_layers]
    assert all(h in msg for h in heads)
    assert torch.equal(dst.module_list[0].conv.weight, src.module_list[0].conv.weight)


def test_pretrained_darknet_backbone_prefix(tmp_path):
    src = Darknet(cfg_path('yolov3-mini'))
    save_darknet_weights(src, tmp_path / 'backbone.conv.14', cutoff=14)
    dst = Darknet(cfg_path('yolov3-mini'))
    assert 'layers 0..13' in load_pretrained(dst, tmp_path / 'backbone.conv.14')
    assert torch.equal(dst.module_list[13].conv.weight, src.module_list[13].conv.weight)
    assert not torch.equal(dst.module_list[14].conv.weight, src.module_list[14].conv.weight)
    (tmp_path / 'junk.weights').write_bytes(b'\0' * 20 + b'\1' * 12)
    with pytest.raises(WeightsError, match='neither the whole cfg'):
        load_pretrained(dst, tmp_path / 'junk.weights')


def test_multi_scale_rect_cache_and_sgd_run(tiny_data, tmp_path):
    """The less common flags train without errors: --multi-scale with MIN MAX TEST sizes, --rect,
    --cache-images, SGD from the hyp file, fp32."""
    m = train.run(data=str(tiny_data), epochs=1, batch_size=8, img_size=[96, 160, 128],
                  hyp=ROOT / 'data' / 'hyp.sgd.yaml', multi_scale=True, cache_images=True,
                  amp=False, project=str(tmp_path), workers=0)
    assert m['images'] == 8  # evaluated on the whole validation split at the TEST size
    opt = load_checkpoint(tmp_path / 'exp' / 'weights' / 'last.pt')['opt']
    assert opt['multi_scale'] and opt['img_size'] == [96, 160, 128]
    r = train.run(data=str(tiny_data), epochs=1, batch_size=8, img_size=[128], rect=True,
                  project=str(tmp_path), workers=0, nosave=True)
    assert r['images'] == 8
    assert train.sizes([96, 160, 128]) == (160, (96, 160), 128)


def test_default_hyp_fine_tunes_from_weights_but_sparse_training_keeps_scratch_rates():
    finetune = train.load_hyp(train.default_hyp('w.pt', sr=False))
    scratch = train.load_hyp(train.default_hyp('w.pt', sr=True))
    assert train.default_hyp('', sr=False) == train.default_hyp('w.pt', sr=True)
    assert finetune['lr0'] < scratch['lr0']
    assert finetune['warmup_bias_lr'] <= finetune['lr0'] < scratch['warmup_bias_lr']
    assert set(finetune) == set(scratch)


def test_a_slow_loader_is_named_once_with_what_to_raise(tiny_data, tmp_path, monkeypatch,
                                                        caplog):
    """Batches that take longer to load than to train on: one warning for the run, naming
    --workers and --cache-images; a fast loader gets none."""
    from utils.datasets import YoloDataset
    slow = YoloDataset.__getitem__

    def slowly(self, i):
        time.sleep(0.05)
        return slow(self, i)

    monkeypatch.setattr(YoloDataset, '__getitem__', slowly)
    train.run(data=str(tiny_data), epochs=2, batch_size=8, img_size=[64], hyp=FAST,
              project=str(tmp_path), workers=0, notest=True, nosave=True, cache_images=False)
    warned = [r.message for r in caplog.records if 'data loader limits' in r.message]
    assert len(warned) == 1 and '--workers (now 0)' in warned[0], warned
    assert '--cache-images' in warned[0]
    caplog.clear()
    monkeypatch.setattr(YoloDataset, '__getitem__', slow)
    train.run(data=str(tiny_data), epochs=1, batch_size=8, img_size=[64], hyp=FAST,
              project=str(tmp_path), workers=1, notest=True, nosave=True, cache_images=True)
    assert not [r for r in caplog.records if 'data loader limits' in r.message]
