"""Train a YOLO detector from a darknet cfg: the one loop sparsity, QAT and distillation hook into.

    python3 train.py                                     # yolov3-mini on the built-in dataset
    python3 train.py --cfg cfg/yolov3-tiny.cfg --data data/voc.data --weights yolov3-tiny.weights
    python3 train.py --resume                            # continue the latest interrupted run
    torchrun --nproc_per_node 2 train.py --batch-size 32 # DDP: NCCL on GPUs, gloo on CPUs

Each epoch evaluates the EMA weights with test.run and writes results.csv, results.png,
last.pt and best.pt (fitness = 0.1 mAP@0.5 + 0.9 mAP@0.5:0.95) into runs/train/exp*/, atomically.
"""
from __future__ import annotations

import argparse
import csv
import math
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
import yaml
from tqdm import tqdm

import test as evaluator
from models.darknet import Darknet
from models.weights import (WeightsError, load_checkpoint, load_pretrained, save_checkpoint)
from distill.hook import distill_hook
from prune.aim import FADE
from prune.sparsity import sparsity_hook
from quantize.hook import quant_hook
from utils.cli import friendly_errors
from utils.datasets import create_dataloader, parse_data_cfg
from utils.hooks import build_hooks
from utils.log import LOGGER
from utils.loss import YoloLoss, scaled_gains
from utils.plots import plot_results
from utils.runs import increment_path, save_options
from utils.torch_utils import ModelEMA, param_groups, select_device, unwrap

ROOT = Path(__file__).resolve().parent


class TrainingError(RuntimeError):
    """The run cannot go on (a non-finite loss); last.pt still holds the last good epoch."""


def fitness(metrics):
    return 0.1 * metrics['map50'] + 0.9 * metrics['map50_95']


def sizes(img_size):
    """--img-size N | MIN MAX [TEST] -> (train size, multi-scale range, test size)."""
    if len(img_size) == 1:
        return img_size[0], (img_size[0], img_size[0]), img_size[0]
    low, high = img_size[0], img_size[1]
    return high, (low, high), img_size[2] if len(img_size) > 2 else high


def amp_settings(device, enabled):
    """(autocast dtype or None, GradScaler needed): fp16 + scaler on CUDA, bf16 on capable CPUs."""
    if not enabled:
        return None, False
    if device.type == 'cuda':
        return torch.float16, True
    if torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return torch.bfloat16, False
    LOGGER.info('mixed precision: this CPU has no bf16 instructions; training in fp32')
    return None, False


def lr_lambda(hyp, epochs):
    if hyp['schedule'] == 'step':
        return lambda e: 1.0 if e < 0.8 * epochs else 0.1 if e < 0.9 * epochs else 0.01
    return lambda e: ((1 - math.cos(e * math.pi / epochs)) / 2) * (hyp['lrf'] - 1) + 1


def build_optimizer(model, hyp, adam, batch_size, accumulate):
    decay, bn, bias = param_groups(model)
    wd = hyp['weight_decay'] * batch_size * accumulate / hyp['nbs']
    if adam or hyp.get('optimizer', 'sgd') == 'adam':
        opt = torch.optim.Adam(bn, lr=hyp['lr0'], betas=(hyp['momentum'], 0.999))
    else:
        opt = torch.optim.SGD(bn, lr=hyp['lr0'], momentum=hyp['momentum'], nesterov=True)
    opt.add_param_group({'params': decay, 'weight_decay': wd})
    opt.add_param_group({'params': bias})
    return opt


def add_hook_parameters(optimizer, hooks, device):
    """Hooks' own trainable tensors (distillation adapters: trained, never part of the model),
    decayed like the conv weights."""
    params = [p for h in hooks for p in h.parameters(device)]
    if params:
        decay = optimizer.param_groups[1]['weight_decay']
        optimizer.add_param_group({'params': params, 'weight_decay': decay})


def warmup(optimizer, hyp, ni, n_warmup, epoch, lf):
    """Linear warmup: bias lr falls from warmup_bias_lr, the others rise from 0; momentum rises."""
    for j, group in enumerate(optimizer.param_groups):
        start = hyp['warmup_bias_lr'] if j == 2 else 0.0
        group['lr'] = float(np.interp(ni, [0, n_warmup], [start, group['initial_lr'] * lf(epoch)]))
        if 'momentum' in group:
            group['momentum'] = float(np.interp(ni, [0, n_warmup], [hyp['warmup_momentum'],
                                                                     hyp['momentum']]))


def setup_distributed():
    """(rank, world size, local rank) from torchrun's environment; one process: (0, 1, -1)."""
    world = int(os.environ.get('WORLD_SIZE', '1'))
    if world == 1:
        return 0, 1, -1
    local = int(os.environ['LOCAL_RANK'])
    backend = 'nccl' if torch.cuda.is_available() else 'gloo'
    if backend == 'nccl':
        torch.cuda.set_device(local)
    dist.init_process_group(backend)
    return dist.get_rank(), world, local


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load_hyp(hyp):
    """A hyp YAML path, or a dict of overrides on top of the default file."""
    if isinstance(hyp, dict):
        return load_hyp(ROOT / 'data' / 'hyp.scratch.yaml') | hyp
    return yaml.safe_load(Path(hyp).read_text())


def default_hyp(weights, sr):
    """Fine-tuning settings when starting from weights, from-scratch settings otherwise. Sparse
    training keeps the larger rates: Adam moves a gamma by about lr per step, and the gammas
    must be able to travel from ~1 to 0. Aimed sparse training (--sr-target) needs them too: at
    the fine-tuning rates yolov3-mini could not adapt to losing its cut channels (mAP@0.5 0.36
    when the cut was complete, against 0.82)."""
    finetune = weights and not sr
    return str(ROOT / 'data' / ('hyp.finetune.yaml' if finetune else 'hyp.scratch.yaml'))


def resolve_resume(resume, project):
    """--resume with no path: the newest last.pt under the project."""
    if resume is True or resume == '':
        found = sorted(Path(project).glob('*/weights/last.pt'), key=os.path.getmtime)
        if not found:
            raise WeightsError(f'--resume: no last.pt under {project}')
        return found[-1]
    return Path(resume)


def checkpoint(model, ema, optimizer, scheduler, scaler, epoch, best, opt, names, hooks,
               metrics):
    return {'cfg': unwrap(model).cfg_text, 'model': unwrap(model).state_dict(),
            'quant': getattr(unwrap(model), 'quant_config', None),
            'ema': ema.ema.state_dict(), 'ema_updates': ema.updates,
            'optimizer': optimizer.state_dict(), 'scheduler': scheduler.state_dict(),
            'scaler': scaler.state_dict() if scaler else None, 'epoch': epoch,
            'best_fitness': best, 'opt': opt, 'names': names, 'metrics': metrics,
            'hooks': {h.name: h.state() for h in hooks}}


def strip_checkpoint(path):
    """Keep only what inference needs: cfg, EMA weights in fp16, names, metrics."""
    ckpt = load_checkpoint(path)
    state = {k: (v.half() if v.dtype == torch.float32 and not _is_range(k) else v)
             for k, v in (ckpt.get('ema') or ckpt['model']).items()}
    save_checkpoint({'cfg': ckpt['cfg'], 'model': state, 'names': ckpt.get('names'),
                     'quant': ckpt.get('quant'),
                     'metrics': ckpt.get('metrics'), 'epoch': ckpt.get('epoch'),
                     'opt': ckpt.get('opt')}, path)


def _is_range(key):
    """Observed quantization ranges stay fp32: fp16 would move every scale."""
    return key.endswith(('observer.lo', 'observer.hi'))


def append_results(path, row):
    new = not path.exists()
    with open(path, 'a', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)


def run(cfg='cfg/yolov3-mini.cfg', data='data/shapes.data', weights='', epochs=10, batch_size=16,
        img_size=(320,), device='', workers=2, resume=None, name='exp', project='runs/train',
        hyp=None, seed=0, notest=False, nosave=False, cache_images=False,
        adam=False, multi_scale=False, rect=False, amp=True, sync_bn=False, exist_ok=False,
        sr=False, s=0.001, prune=0, sr_schedule='constant', sr_flops=False, sr_target=None,
        sr_fade=FADE, sr_round=1, t_cfg='', t_weights='', KDstr=1, kd_weight=1.0, kd_T=3.0,
        kd_feature='l2', quantized=0, w_bits=8, a_bits=8, BN_Fold=False, FPGA=False,
        quant_observer='', quant_freeze_epoch=-1, **extra):
    """Train; returns the final metrics dict (rank 0) or None (other ranks)."""
    hyp = hyp or default_hyp(weights, sr)
    opt = {k: v for k, v in locals().items() if k != 'extra'} | extra
    opt = {k: str(v) if isinstance(v, Path) else v for k, v in opt.items()}  # plain types only:
    opt['img_size'] = list(img_size)  # checkpoints that hold opt load with weights_only
    if resume:
        ckpt_path = resolve_resume(resume, project)
        resumed = load_checkpoint(ckpt_path)
        opt = {**resumed['opt'], 'resume': str(ckpt_path), 'device': device or
               resumed['opt'].get('device', ''), 'workers': workers}
        return _train(opt, resumed, ckpt_path.parent.parent)
    return _train(opt, None, None)


def _train(opt, resumed, save_dir):
    rank, world, local = setup_distributed()
    try:
        return Trainer(opt, resumed, save_dir, rank, world, local).fit()
    finally:
        if world > 1:
            dist.barrier()  # without it a rank may abort while another still tears down
            dist.destroy_process_group()


class Trainer:
    """One training run in one process (rank); only rank 0 evaluates and writes."""

    def __init__(self, opt, resumed, save_dir, rank, world, local):
        self.opt, self.rank, self.world, self.main = opt, rank, world, rank == 0
        self.device = torch.device('cuda', local) if local >= 0 and torch.cuda.is_available() \
            else select_device(opt['device'])
        seed_everything(opt['seed'] + rank)
        data_cfg = parse_data_cfg(opt['data'])
        self.nc, self.names = data_cfg['classes'], data_cfg['names']
        self.train_size, self.size_range, test_size = sizes(list(opt['img_size']))
        self.save_dir = self._run_folder(save_dir)
        builders = (sparsity_hook, quant_hook, distill_hook)  # the order of on_model:
        # sparsity reads the float graph (the swap keeps its BN tensors), distillation taps the
        # modules the model finally has
        self.hooks = [h for h in (b(opt) for b in builders) if h] + build_hooks(opt)
        for h in self.hooks:
            h.save_dir = self.save_dir if self.main else None
        self.model, hyp = self._build_model(resumed)
        self.hyp = opt['hyp_values'] = hyp
        self.accumulate = max(round(hyp['nbs'] / opt['batch_size']), 1)
        self.optimizer = build_optimizer(self.model, hyp, opt['adam'], opt['batch_size'],
                                         self.accumulate)
        for h in self.hooks:
            h.hyp = hyp
        add_hook_parameters(self.optimizer, self.hooks, self.device)
        self.lf = lr_lambda(hyp, opt['epochs'])
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self.lf)
        self.ema = ModelEMA(self.model) if self.main else None
        self.amp_dtype, use_scaler = amp_settings(self.device, opt['amp'])
        self.scaler = torch.amp.GradScaler('cuda') if use_scaler else None
        self.start_epoch, self.best = self._restore(resumed) if resumed else (0, -1.0)
        if world > 1:
            self.model = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[local] if self.device.type == 'cuda' else None)
        self.train_loader, self.train_set = create_dataloader(
            data_cfg['train'], self.nc, self.train_size, opt['batch_size'] // world,
            augment=True, hyp=hyp, rect=opt['rect'], workers=opt['workers'], shuffle=True,
            cache_images=opt['cache_images'], prefix='train: ' if self.main else '',
            distributed=world > 1, seed=opt['seed'])
        self.val_loader = None
        if self.main:
            self.val_loader, _ = create_dataloader(
                data_cfg['valid'], self.nc, test_size, opt['batch_size'] // world * 2,
                workers=opt['workers'], prefix='valid: ')
            save_options({k: v for k, v in opt.items() if k != 'hyp_values'},
                         self.save_dir / 'opt.yaml')
            (self.save_dir / 'hyp.yaml').write_text(yaml.safe_dump(hyp, sort_keys=False))
        self.criterion = YoloLoss(unwrap(self.model), hyp)
        nb = len(self.train_loader)
        self.n_warmup = max(round(hyp['warmup_epochs'] * nb), 100) if hyp['warmup_epochs'] else 0
        self.last_step = -1
        self.metrics = {'precision': 0.0, 'recall': 0.0, 'map50': 0.0, 'map50_95': 0.0}
        self.last_plot = time.time()

    def _run_folder(self, save_dir):
        if self.main and save_dir is None:
            save_dir = increment_path(self.opt['project'], self.opt['name'], self.opt['exist_ok'])
        if self.world > 1:  # every rank learns rank 0's folder
            holder = [str(save_dir)]
            dist.broadcast_object_list(holder, 0)
            save_dir = holder[0]
        return Path(save_dir)

    def _build_model(self, resumed):
        opt = self.opt
        model = Darknet(resumed['cfg'] if resumed else opt['cfg'])
        if model.nc != self.nc:
            raise WeightsError(f"{opt['cfg']}: the model predicts {model.nc} classes, "
                               f"{opt['data']} has {self.nc}")
        if opt['weights'] and not resumed:
            msg = load_pretrained(model, opt['weights'])
            if self.main:
                LOGGER.info(f'pretrained: {msg}')
        for h in self.hooks:
            model = h.on_model(model)
        if resumed:
            hyp = resumed['opt']['hyp_values']  # already scaled for this model
        else:
            hyp = scaled_gains(load_hyp(opt['hyp']), len(model.yolo_layers), self.nc,
                               self.train_size)
        model = model.to(self.device).to(memory_format=torch.channels_last)
        if opt['sync_bn'] and self.world > 1:
            if self.device.type == 'cuda':
                model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
            elif self.main:  # torch implements SyncBatchNorm for GPUs only
                LOGGER.warning('WARNING: --sync-bn needs CUDA; using per-process BatchNorm')
        return model, hyp

    def _restore(self, resumed):
        """Exact continuation: weights, optimizer, LR schedule, EMA, scaler, hooks."""
        self.model.load_state_dict(resumed['model'])
        self.optimizer.load_state_dict(resumed['optimizer'])
        self.scheduler.load_state_dict(resumed['scheduler'])
        if self.scaler and resumed.get('scaler'):
            self.scaler.load_state_dict(resumed['scaler'])
        if self.ema:
            self.ema.ema.load_state_dict(resumed['ema'])
            self.ema.updates = resumed['ema_updates']
        for h in self.hooks:
            h.load_state(resumed.get('hooks', {}).get(h.name, {}))
        if self.main:
            LOGGER.info(f"resuming {self.opt['resume']} at epoch {resumed['epoch'] + 1}")
        return resumed['epoch'] + 1, resumed['best_fitness']

    def fit(self):
        opt, t_start = self.opt, time.time()
        if self.main:
            precision = str(self.amp_dtype).replace('torch.', '') if self.amp_dtype else 'fp32'
            LOGGER.info(f"training {opt['cfg']} on {opt['data']} for {opt['epochs']} epochs: "
                        f'{len(self.train_set)} images, batch {opt["batch_size"]} x '
                        f'{self.accumulate} accumulated, {self.train_size} px, {self.device}, '
                        f'{precision}')
        self.optimizer.zero_grad()
        for epoch in range(self.start_epoch, opt['epochs']):
            t_epoch = time.time()
            losses = self.train_epoch(epoch)
            lr = self.optimizer.param_groups[1]['lr']
            self.scheduler.step()
            extra = {}
            for h in self.hooks:
                extra.update(h.on_epoch_end(unwrap(self.model), epoch))
            if self.main:
                self.end_epoch(epoch, losses | {'lr': lr} | extra, t_epoch)
        if not self.main:
            return None
        wdir = self.save_dir / 'weights'
        if not opt['nosave'] and (wdir / 'best.pt').exists():
            strip_checkpoint(wdir / 'best.pt')
        LOGGER.info(f"{opt['epochs'] - self.start_epoch} epochs in "
                    f'{(time.time() - t_start) / 60:.1f} min; results in {self.save_dir}')
        return self.metrics | {'save_dir': str(self.save_dir)}

    def train_epoch(self, epoch):
        """One pass over the training set; returns the mean of each loss term."""
        self.model.train()
        for h in self.hooks:
            h.on_epoch_start(unwrap(self.model), epoch)
        if hasattr(self.train_loader.sampler, 'set_epoch'):
            self.train_loader.sampler.set_epoch(epoch)
        nb, sums = len(self.train_loader), {}
        bar = tqdm(self.train_loader, total=nb, disable=not self.main, ncols=110,
                   bar_format='{l_bar}{bar:20}{r_bar}',
                   mininterval=0.1 if sys.stderr.isatty() else 30)  # keep logs short
        for i, (imgs, targets, _, _) in enumerate(bar):
            terms = self.train_step(epoch, i + nb * epoch, imgs, targets)
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v
            if self.main:
                shown = ' '.join(f'{k} {v / (i + 1):.4f}' for k, v in sums.items())
                bar.set_description(f"{epoch + 1}/{self.opt['epochs']} {shown} lr "
                                    f"{self.optimizer.param_groups[1]['lr']:.2e} "
                                    f'{imgs.shape[-1]}px', refresh=False)
        means = {k: round(v / nb, 5) for k, v in sums.items()}
        return means | {'total': round(sum(means.values()), 5)}

    def train_step(self, epoch, ni, imgs, targets):
        """Forward, loss (with hook terms), backward; an optimizer step when enough has
        accumulated. Returns the loss terms as floats."""
        opt, hyp = self.opt, self.hyp
        imgs = imgs.to(self.device, non_blocking=True).float().div_(255)
        imgs = imgs.contiguous(memory_format=torch.channels_last)
        accumulate = self.accumulate
        if ni < self.n_warmup:
            warmup(self.optimizer, hyp, ni, self.n_warmup, epoch, self.lf)
            accumulate = max(1, round(np.interp(ni, [0, self.n_warmup],
                                                [1, hyp['nbs'] / opt['batch_size']])))
        if opt['multi_scale']:
            imgs = _rescale(imgs, *self.size_range)
        with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                            enabled=self.amp_dtype is not None):
            preds = self.model(imgs)
            loss, items = self.criterion(preds, targets.to(self.device), imgs.shape[2:])
            extra = {}
            for h in self.hooks:
                extra.update(h.extra_loss(unwrap(self.model), imgs, preds, targets))
            for value in extra.values():
                loss = loss + value * imgs.shape[0]  # the loss is scaled by batch size too
        if not torch.isfinite(loss):
            raise TrainingError(f'loss became {loss.item()} at epoch {epoch} batch '
                                f'{ni % len(self.train_loader)}; stopping (last.pt keeps epoch '
                                f'{epoch - 1}); try a lower lr0 or --no-amp')
        loss = loss * self.world  # DDP averages gradients across ranks
        (self.scaler.scale(loss) if self.scaler else loss).backward()
        if ni - self.last_step >= accumulate:
            optimizer_step(self.model, self.optimizer, self.scaler, self.hooks, epoch)
            if self.ema:
                self.ema.update(self.model)
            self.last_step = ni
        box, obj, cls = items.tolist()
        return {'box': box, 'obj': obj, 'cls': cls} | {k: v.item() for k, v in extra.items()}

    def end_epoch(self, epoch, row, t_epoch):
        """Evaluate the EMA, log the row, write results and checkpoints (rank 0)."""
        opt = self.opt
        final = epoch + 1 == opt['epochs']
        evaluated = not opt['notest'] or final
        if evaluated:
            self.metrics = evaluator.run(model=self.ema.ema, dataloader=self.val_loader,
                                         names=self.names, verbose=final, plots=final,
                                         save_dir=self.save_dir if final else None)
        m = self.metrics
        row = {'epoch': epoch} | row | {k: round(m[k], 5) for k in
                                        ('precision', 'recall', 'map50', 'map50_95')}
        row['seconds'] = round(time.time() - t_epoch, 1)
        append_results(self.save_dir / 'results.csv', row)
        if final or time.time() - self.last_plot > 60:  # a plot costs ~1 s
            plot_results(self.save_dir / 'results.csv')
            self.last_plot = time.time()
        best_pt = self.save_dir / 'weights' / 'best.pt'
        eligible = all(h.best_eligible(epoch) for h in self.hooks)
        improved = (eligible and fitness(m) > self.best) or not best_pt.exists()
        if eligible:
            self.best = max(self.best, fitness(m))
        score = (f"mAP@0.5 {m['map50']:.4f} mAP@0.5:0.95 {m['map50_95']:.4f}" if evaluated
                 else 'not evaluated (--notest)')
        LOGGER.info(f"epoch {epoch + 1}: {score} ({row['seconds']} s)")
        if not opt['nosave']:
            ckpt = checkpoint(self.model, self.ema, self.optimizer, self.scheduler, self.scaler,
                              epoch, self.best, opt, self.names, self.hooks, m)
            save_checkpoint(ckpt, self.save_dir / 'weights' / 'last.pt')
            if improved:
                save_checkpoint(ckpt, best_pt)


def optimizer_step(model, optimizer, scaler, hooks, epoch):
    """One optimizer step; hooks see true (unscaled) gradients, once per step."""
    if scaler:
        scaler.unscale_(optimizer)
    for h in hooks:
        h.after_backward(unwrap(model), epoch)
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=10.0)
    if scaler:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    optimizer.zero_grad()
    for h in hooks:
        h.after_step(unwrap(model), epoch)


def _rescale(imgs, low, high, stride=32):
    """Multi-scale training: a random size in [low, high], a multiple of the stride."""
    size = random.randrange(low, high + stride, stride) // stride * stride
    if size == imgs.shape[-1]:
        return imgs
    return F.interpolate(imgs, size=(size, size), mode='bilinear', align_corners=False)


def parse_opt(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--cfg', default='cfg/yolov3-mini.cfg', help='model cfg')
    p.add_argument('--data', default='data/shapes.data', help='.data file')
    p.add_argument('--weights', default='', help='initial weights: .pt, .weights or a darknet '
                   'backbone file (e.g. darknet53.conv.74); heads that do not fit start fresh')
    p.add_argument('--epochs', type=int, default=10)
    p.add_argument('--batch-size', type=int, default=16, help='total over all processes')
    p.add_argument('--img-size', type=int, nargs='+', default=[320],
                   help='train size, or MIN MAX [TEST] with --multi-scale')
    p.add_argument('--device', default='', help="'cpu', '0'; default: CUDA if any")
    p.add_argument('--workers', type=int, default=2, help='dataloader processes')
    p.add_argument('--resume', nargs='?', const=True, default=None,
                   help='continue a run: its last.pt, or the newest one under --project')
    p.add_argument('--name', default='exp')
    p.add_argument('--project', default='runs/train')
    p.add_argument('--exist-ok', action='store_true')
    p.add_argument('--hyp', default=None, help='default: data/hyp.finetune.yaml with --weights '
                   '(and no -sr), else data/hyp.scratch.yaml')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--notest', action='store_true', help='evaluate only after the last epoch')
    p.add_argument('--nosave', action='store_true', help='write no checkpoints')
    p.add_argument('--cache-images', action='store_true', help='keep decoded images in RAM')
    p.add_argument('--adam', action='store_true',
                   help="Adam even if the hyp file says 'optimizer: sgd'")
    p.add_argument('--multi-scale', action='store_true', help='random size per batch')
    p.add_argument('--rect', action='store_true', help='rectangular batches, no mosaic')
    p.add_argument('--amp', action=argparse.BooleanOptionalAction, default=True,
                   help='mixed precision (default on): fp16 + GradScaler on CUDA, bf16 on CPUs '
                        'with bf16 instructions; --no-amp for fp32')
    p.add_argument('--sync-bn', action='store_true', help='SyncBatchNorm under DDP')
    p.add_argument('-sr', '--sr', action='store_true',
                   help='sparse training: L1 on the BN gammas that --prune mode may remove')
    p.add_argument('--s', type=float, default=0.001, help='sparsity strength')
    p.add_argument('--prune', type=int, default=0, choices=[0, 1, 2],
                   help='0: convs not tied to others, 1: also shortcut/SE-tied, 2: residual blocks')
    p.add_argument('--sr-schedule', default='constant', choices=['constant', 'decay'],
                   help='decay: a tenth of --s over the last 30%% of the epochs')
    p.add_argument('--sr-flops', action='store_true',
                   help="weigh each gamma's push by its channel's BFLOPs (use with the prune "
                        "scripts' --rank layer)")
    p.add_argument('--sr-target', type=float, default=None, metavar='KEEP',
                   help='aim at the slim cut leaving KEEP of the BFLOPs (e.g. 0.3): its channels '
                        'get the push and drop out of a growing share of the images, gone at '
                        '--sr-fade of the epochs (then prune with slim_prune.py --rank layer)')
    p.add_argument('--sr-fade', type=float, default=FADE, metavar='SHARE',
                   help='with --sr-target: share of the epochs over which the cut fades out')
    p.add_argument('--sr-round', type=int, default=1, metavar='N',
                   help='with --sr-target: every layer keeps a multiple of N channels (8 or 16 '
                        'suit CPU and GPU kernels; then prune with slim_prune.py --round N)')
    p.add_argument('--t_cfg', '--t-cfg', default='', help="teacher cfg (a .pt holds its own)")
    p.add_argument('--t_weights', '--t-weights', default='', help='teacher weights: distill')
    p.add_argument('--KDstr', type=int, default=1, choices=[1, 2, 3, 4, 5],
                   help='1 outputs, 2 teacher-bounded, 3 imitation, 4 +features, '
                        '5 +fine-grained mask')
    p.add_argument('--kd-weight', type=float, default=1.0, help='gain of the distillation terms')
    p.add_argument('--kd-T', type=float, default=3.0, help='softmax temperature for classes')
    p.add_argument('--kd-feature', default='l2', choices=['l2', 'l1'],
                   help='feature distance for --KDstr 4 and 5')
    p.add_argument('--quantized', type=int, default=0, choices=[0, 1, 2, 3],
                   help='QAT: 1 Google 8-bit, 2 DoReFa, 3 TensorRT-style (0: off)')
    p.add_argument('--w-bits', type=int, default=8, help='QAT weight bits')
    p.add_argument('--a-bits', type=int, default=8, help='QAT activation bits')
    p.add_argument('--BN_Fold', '--bn-fold', action='store_true',
                   help='QAT: fold BN into the conv while training')
    p.add_argument('--FPGA', '--fpga', action='store_true',
                   help='QAT: every scale a power of two')
    p.add_argument('--quant-observer', default='', choices=['', 'minmax', 'ema', 'percentile'],
                   help='activation ranges (default: ema)')
    p.add_argument('--quant-freeze-epoch', type=int, default=-1,
                   help='freeze observers and folded BN from this epoch (default: at 70%%)')
    return p.parse_args(argv)


@friendly_errors
def main(argv=None):
    opt = parse_opt(argv)
    try:
        run(**vars(opt))
    except TrainingError as e:
        LOGGER.error(f'error: {e}')
        raise SystemExit(1) from None


if __name__ == '__main__':
    main()
