"""The training loop: one Trainer per process (rank), built from checked options; sparsity,
QAT, 2:4 and distillation hook into it (utils/hooks.py)."""
from __future__ import annotations

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

from distill.hook import distill_hook
from models.darknet import Darknet
from models.tasks import check_tasks
from models.weights import load_pretrained, save_checkpoint
from prune.sparse24 import sparse24_hook
from prune.sparsity import sparsity_hook
from quantize.hook import quant_hook
from train.checkpoint import append_results, checkpoint, restore, strip_checkpoint
from train.options import cfg_label, sizes
from utils.datasets import create_dataloader, default_workers, fits_in_ram, parse_data_cfg
from utils.errors import OptionError, ToolkitError
from utils.evaluate import evaluate_model
from utils.files import atomic_write_text, check_room, check_writable
from utils.hooks import HOOK_BUILDERS, build_hooks
from utils.hyp import load_hyp
from utils.log import LOGGER
from utils.loss import Criterion, scaled_gains
from utils.optim import (add_hook_parameters, build_optimizer, group, lr_lambda,
                         optimizer_step, warmup)
from utils.plots import plot_results
from utils.runs import increment_path, project_dir, save_options
from utils.torch_utils import (ModelEMA, amp_settings, autocast, select_device, setup_distributed,
                               unwrap)


# The built-in features register as any other hook does, first and in on_model order:
# sparsity and 2:4 read the float graph (the swap keeps its conv and BN tensors), distillation
# taps the modules the model finally has.
HOOK_BUILDERS[:0] = [b for b in (sparsity_hook, sparse24_hook, quant_hook, distill_hook)
                     if b not in HOOK_BUILDERS]


class TrainingError(ToolkitError, RuntimeError):
    """The run cannot go on (a non-finite loss); last.pt still holds the last good epoch."""


LOADER_BOUND = 0.2  # share of an epoch the step waits for batches that earns a warning


def fitness(metrics):
    """best.pt's criterion: 0.1 mAP@0.5 + 0.9 mAP@0.5:0.95 for detection, mIoU for
    segmentation, their mean for a network that does both."""
    parts = []
    if 'map50' in metrics:
        parts.append(0.1 * metrics['map50'] + 0.9 * metrics['map50_95'])
    if 'miou' in metrics:
        parts.append(metrics['miou'])
    return sum(parts) / len(parts)


DET_KEYS, SEG_KEYS = ('precision', 'recall', 'map50', 'map50_95'), ('miou', 'pixel_acc')


def score_line(m):
    parts = []
    if 'map50' in m:
        parts.append(f"mAP@0.5 {m['map50']:.4f} mAP@0.5:0.95 {m['map50_95']:.4f}")
    if 'miou' in m:
        parts.append(f"mIoU {m['miou']:.4f}")
    return ' '.join(parts)


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train_in_process(opt, resumed, save_dir):
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
            else select_device(opt.device)
        seed_everything(opt.seed + rank)
        self.hooks = build_hooks(opt)  # their options fail here, before the dataset is read
        data_cfg = parse_data_cfg(opt.data)
        self.nc, self.names = data_cfg['classes'], data_cfg['names']
        self.seg_names = data_cfg.get('seg_names')
        self.train_size, self.size_range, test_size = sizes(list(opt.img_size))
        self.model, hyp = self._build_model(resumed)  # bad options and files fail before ...
        self.save_dir = self._run_folder(save_dir)  # ... a run folder is made
        for h in self.hooks:
            h.save_dir = self.save_dir if self.main else None
        self.hyp = opt.hyp_values = hyp
        self.accumulate = max(round(hyp['nbs'] / opt.batch_size), 1)
        self.optimizer = build_optimizer(self.model, hyp, opt.adam, opt.batch_size,
                                         self.accumulate)
        for h in self.hooks:
            h.hyp = hyp
        add_hook_parameters(self.optimizer, self.hooks, self.device)
        if self.main and not opt.nosave:
            self._check_checkpoint_room()
        self.lf = lr_lambda(hyp, opt.epochs)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self.lf)
        self.ema = ModelEMA(self.model) if self.main else None
        self.amp_dtype, use_scaler = amp_settings(self.device, opt.amp)
        self.scaler = torch.amp.GradScaler('cuda') if use_scaler else None
        self.start_epoch, self.best = self._restore(resumed) if resumed else (0, -1.0)
        if world > 1:
            self.model = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[local] if self.device.type == 'cuda' else None)
        seg_nc, cuda = unwrap(self.model).seg_nc, self.device.type == 'cuda'
        self.workers = default_workers(cuda, world) if opt.workers is None else opt.workers
        cache = self._cache(data_cfg)
        self.train_loader, self.train_set = create_dataloader(
            opt.images or data_cfg['train'], self.nc, self.train_size, opt.batch_size // world,
            augment=True, hyp=hyp, rect=opt.rect, workers=self.workers, shuffle=True,
            cache_images=cache, prefix='train: ' if self.main else '',
            distributed=world > 1, seed=opt.seed, seg_nc=seg_nc, pin_memory=cuda)
        self.val_loader = None
        if self.main and not (opt.teacher_only and 'valid' not in data_cfg):
            self.val_loader, _ = create_dataloader(
                data_cfg['valid'], self.nc, test_size, opt.batch_size // world * 2,
                workers=self.workers, prefix='valid: ', seg_nc=seg_nc, pin_memory=cuda)
        if self.main:  # what the run did: cache_images as decided, not None
            save_options({k: v for k, v in opt.to_dict().items() if k != 'hyp_values'} |
                         {'cache_images': cache}, self.save_dir / 'opt.yaml')
            atomic_write_text(self.save_dir / 'hyp.yaml', yaml.safe_dump(hyp, sort_keys=False))
        self.criterion = Criterion(unwrap(self.model), hyp)
        nb = len(self.train_loader)
        self.n_warmup = (max(round(hyp['warmup_epochs'] * nb), hyp['warmup_min_iters'])
                         if hyp['warmup_epochs'] else 0)
        self.last_step = -1
        model = unwrap(self.model)
        self.metrics = ({k: 0.0 for k in DET_KEYS} if model.yolo_layers else {}) | \
            ({k: 0.0 for k in SEG_KEYS} if model.seg_layers else {})
        self.last_plot = time.time()
        self.warned_loader = False

    def _cache(self, data_cfg):
        """--cache-images as given; by default, whether the decoded training images take under
        a quarter of the free memory (each rank holds its own copy)."""
        if self.opt.cache_images is not None:
            return self.opt.cache_images
        return fits_in_ram(self.opt.images or data_cfg['train'], self.nc, self.train_size,
                           0.25 / self.world)

    def _check_checkpoint_room(self):
        """weights/ takes last.pt and best.pt (model, EMA and optimizer state each), one written
        beside its old copy: a read-only or full disk fails now, not after the first epoch."""
        wdir = self.save_dir / 'weights'
        if wdir.exists() and not wdir.is_dir():
            raise TrainingError(f'{wdir}: not a folder; the checkpoints go there')
        wdir.mkdir(exist_ok=True)
        for name in ('last.pt', 'best.pt'):
            if (wdir / name).exists() and not (wdir / name).is_file():
                raise TrainingError(f'{wdir / name}: not a file; a checkpoint is written there')
        check_writable(wdir)
        n = sum(p.numel() for p in self.model.parameters())
        moments = 2 if self.opt.adam else 1
        check_room(wdir, 3 * n * 4 * (2 + moments), 'last.pt and best.pt')

    def _run_folder(self, save_dir):
        if self.main and save_dir is None:
            taken = project_dir(self.opt.project) / self.opt.name / 'weights'
            if self.opt.exist_ok and any((taken / f).exists() for f in ('last.pt', 'best.pt')):
                raise OptionError(f'--exist-ok: {taken} holds a run\'s checkpoints, which '
                                  'would be overwritten: give another --name, or --resume it')
            save_dir = increment_path(self.opt.project, self.opt.name, self.opt.exist_ok)
        if self.world > 1:  # every rank learns rank 0's folder
            holder = [str(save_dir)]
            dist.broadcast_object_list(holder, 0)
            save_dir = holder[0]
        return Path(save_dir)

    def _build_model(self, resumed):
        opt = self.opt
        model = Darknet(resumed['cfg'] if resumed else opt.cfg)
        check_tasks(model, cfg_label(opt), opt.data, self.nc, self.seg_names)
        if opt.weights and not resumed:
            msg = load_pretrained(model, opt.weights, other_classes=opt.pt)
            if self.main:
                LOGGER.info(f'pretrained: {msg}')
        for h in self.hooks:
            model = h.on_model(model)
        if resumed:
            hyp = resumed['opt']['hyp_values']  # already scaled for this model
        else:
            hyp = scaled_gains(load_hyp(opt.hyp), len(model.yolo_layers), self.nc,
                               self.train_size)
        model = model.to(self.device).to(memory_format=torch.channels_last)
        if opt.sync_bn and self.world > 1:
            if self.device.type == 'cuda':
                model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
            elif self.main:  # torch implements SyncBatchNorm for GPUs only
                LOGGER.warning('WARNING: --sync-bn needs CUDA; using per-process BatchNorm')
        return model, hyp

    def _restore(self, resumed):
        """Exact continuation: weights, optimizer, LR schedule, EMA, scaler, hooks; a part that
        does not fit this run is refused by name, before the first batch."""
        restore(resumed, self.opt.resume, self.model, self.optimizer, self.scheduler,
                self.scaler if resumed.get('scaler') else None, self.ema)
        for h in self.hooks:
            h.load_state(resumed.get('hooks', {}).get(h.name, {}))
        if self.main:
            LOGGER.info(f"resuming {self.opt.resume} at epoch {resumed['epoch'] + 1}")
        return resumed['epoch'] + 1, resumed['best_fitness']

    def fit(self):
        opt, t_start = self.opt, time.time()
        if self.main:
            precision = str(self.amp_dtype).replace('torch.', '') if self.amp_dtype else 'fp32'
            LOGGER.info(f"training {cfg_label(opt)} on {opt.data} for {opt.epochs} epochs: "
                        f'{len(self.train_set)} images, batch {opt.batch_size} x '
                        f'{self.accumulate} accumulated, {self.train_size} px, {self.device}, '
                        f'{precision}')
        self.optimizer.zero_grad()
        for epoch in range(self.start_epoch, opt.epochs):
            t_epoch = time.time()
            losses = self.train_epoch(epoch)
            lr = group(self.optimizer, 'decay')['lr']
            self.scheduler.step()
            extra = {}
            for h in self.hooks:
                extra.update(h.on_epoch_end(unwrap(self.model), epoch))
            if self.main:
                self.end_epoch(epoch, losses | {'lr': lr} | extra, t_epoch)
        if not self.main:
            return None
        wdir = self.save_dir / 'weights'
        if not opt.nosave and (wdir / 'best.pt').exists():
            strip_checkpoint(wdir / 'best.pt')
        LOGGER.info(f"{opt.epochs - self.start_epoch} epochs in "
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
        waited, ready = 0.0, time.perf_counter()
        for i, (imgs, targets, _, _, masks) in enumerate(bar):
            if i:  # the first batch waits for the workers to start
                waited += time.perf_counter() - ready
            else:
                t_first = time.perf_counter()
            terms = self.train_step(epoch, i + nb * epoch, imgs, targets, masks)
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v
            if self.main:
                shown = ' '.join(f'{k} {v / (i + 1):.4f}' for k, v in sums.items())
                bar.set_description(f"{epoch + 1}/{self.opt.epochs} {shown} lr "
                                    f"{group(self.optimizer, 'decay')['lr']:.2e} "
                                    f'{imgs.shape[-1]}px', refresh=False)
            ready = time.perf_counter()
        if nb > 1:
            self._warn_if_loader_bound(waited / (ready - t_first))
        means = {k: round(v / nb, 5) for k, v in sums.items()}
        return means | {'total': round(sum(means.values()), 5)}

    def _warn_if_loader_bound(self, share):
        """Once per run: the step waited for batches over LOADER_BOUND of the epoch."""
        if share < LOADER_BOUND or not self.main or self.warned_loader:
            return
        self.warned_loader = True
        cached = self.train_set.images[0] is not None
        LOGGER.warning(f'WARNING: the data loader limits training: the step waited for batches '
                       f'{share:.0%} of the epoch; raise --workers (now {self.workers})'
                       + ('' if cached else ' or keep the images in RAM (--cache-images)'))

    def train_step(self, epoch, ni, imgs, targets, masks=None):
        """Forward, loss (with hook terms), backward; an optimizer step when enough has
        accumulated. Returns the loss terms as floats."""
        opt, hyp = self.opt, self.hyp
        imgs = imgs.to(self.device, non_blocking=True).float().div_(255)
        imgs = imgs.contiguous(memory_format=torch.channels_last)
        accumulate = self.accumulate
        if ni < self.n_warmup:
            warmup(self.optimizer, hyp, ni, self.n_warmup, epoch, self.lf)
            accumulate = max(1, round(np.interp(ni, [0, self.n_warmup],
                                                [1, hyp['nbs'] / opt.batch_size])))
        if opt.multi_scale:
            imgs = _rescale(imgs, *self.size_range)
        with autocast(self.device, self.amp_dtype):
            preds = self.model(imgs)
            if opt.teacher_only:  # labels, if the photos have any, are not looked at
                loss, terms = imgs.new_zeros(()), {}
            else:
                loss, terms = self.criterion(preds, targets.to(self.device), imgs.shape[2:],
                                             masks)
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
            optimizer_step(self.model, self.optimizer, self.scaler, self.hooks, epoch,
                           hyp['clip_grad'])
            if self.ema:
                self.ema.update(self.model)
            self.last_step = ni
        return {k: float(v) for k, v in terms.items()} | {k: v.item() for k, v in extra.items()}

    def end_epoch(self, epoch, row, t_epoch):
        """Evaluate the EMA, log the row, write results and checkpoints (rank 0)."""
        opt = self.opt
        final = epoch + 1 == opt.epochs
        evaluated = (not opt.notest or final) and self.val_loader is not None
        if evaluated:
            self.metrics = evaluate_model(self.ema.ema, self.val_loader, self.names,
                                          verbose=final, plots=final,
                                          save_dir=self.save_dir if final else None,
                                          seg_names=self.seg_names)
        m = self.metrics
        row = {'epoch': epoch} | row | {k: round(m[k], 5) for k in DET_KEYS + SEG_KEYS
                                        if k in m}
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
        score = score_line(m) if evaluated else ('not evaluated (--notest)' if opt.notest else
                                                 'not evaluated (no valid= photos)')
        LOGGER.info(f"epoch {epoch + 1}: {score} ({row['seconds']} s)")
        if not opt.nosave:
            ckpt = checkpoint(self.model, self.ema, self.optimizer, self.scheduler, self.scaler,
                              epoch, self.best, opt.to_dict(), self.names, self.hooks, m)
            if improved:  # best.pt first: a last.pt of epoch k means best.pt has seen epoch k
                save_checkpoint(ckpt, best_pt)
            save_checkpoint(ckpt, self.save_dir / 'weights' / 'last.pt')


def _rescale(imgs, low, high, stride=32):
    """Multi-scale training: a random size in [low, high], a multiple of the stride."""
    size = random.randrange(low, high + stride, stride) // stride * stride
    if size == imgs.shape[-1]:
        return imgs
    return F.interpolate(imgs, size=(size, size), mode='bilinear', align_corners=False)
