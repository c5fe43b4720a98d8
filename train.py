"""Train a YOLO detector from a darknet cfg: the one loop sparsity, QAT and distillation hook into.

    python3 train.py                                     # yolov3-mini on the built-in dataset
    python3 train.py --cfg cfg/yolov3-tiny.cfg --data data/voc.data --weights yolov3-tiny.weights
    python3 train.py --data my.data -pt --cfg cfg/yolov3.cfg --weights yolov3.weights  # COCO start
    python3 train.py --resume                            # continue the latest interrupted run
    torchrun --nproc_per_node 2 train.py --batch-size 32 # DDP: NCCL on GPUs, gloo on CPUs

Each epoch evaluates the EMA weights (utils/evaluate.py) and writes results.csv, results.png,
last.pt and best.pt (fitness = 0.1 mAP@0.5 + 0.9 mAP@0.5:0.95) into runs/train/exp*/, atomically.
Every option is a field of TrainOptions below: its default, its flag and its help live there.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import io
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

from distill.hook import distill_hook
from models.cfg import load_blocks
from models.darknet import Darknet
from models.weights import WeightsError, load_checkpoint, load_pretrained, save_checkpoint
from prune.aim import FADE
from prune.sparse24 import sparse24_hook
from prune.sparsity import sparsity_hook
from quantize.hook import quant_hook
from utils.cli import friendly_errors
from utils.datasets import create_dataloader, default_workers, fits_in_ram, parse_data_cfg
from utils.errors import OptionError, ToolkitError
from utils.evaluate import evaluate_model
from utils.files import atomic_write_text, check_room, check_writable
from utils.hooks import build_hooks
from utils.hyp import check as check_hyp
from utils.hyp import load_hyp
from utils.log import LOGGER
from utils.loss import Criterion, scaled_gains
from utils.optim import (add_hook_parameters, build_optimizer, loaded_state_problem, lr_lambda,
                         optimizer_step, warmup)
from utils.options import (Options, Parser, at_least, field, positive_float, size_problem,
                           unit_float)
from utils.plots import plot_results
from utils.runs import increment_path, project_dir, save_options
from utils.torch_utils import ModelEMA, amp_settings, autocast, select_device, unwrap

ROOT = Path(__file__).resolve().parent


class TrainingError(ToolkitError, RuntimeError):
    """The run cannot go on (a non-finite loss); last.pt still holds the last good epoch."""


DEFAULT_CFG = 'cfg/yolov3-mini.cfg'
LOADER_BOUND = 0.2  # share of an epoch the step waits for batches that earns a warning


@dataclasses.dataclass
class TrainOptions(Options):
    """Everything a training run is told; train.run(**kw) and the command line build it."""
    cfg: str = field('', shared=True)  # '': the cfg a .pt --weights holds, else DEFAULT_CFG
    data: str = field('data/shapes.data', shared=True)
    weights: str = field('', 'where training starts; also a darknet backbone file (e.g. '
                         'darknet53.conv.74); .pt heads that do not fit start fresh', shared=True)
    pt: bool = field(False, 'darknet --weights of the same cfg trained for other classes '
                     "(COCO's 80): all layers but the convs before the yolo layers load",
                     flags=['-pt', '--pt'], action='store_true')
    epochs: int = field(10, 'training epochs', type=int)
    batch_size: int = field(16, 'total over all processes', shared=True)
    img_size: list = field([], 'or MIN MAX [TEST] with --multi-scale', shared=True)
    device: str = field('', shared=True)
    workers: int = field(None, 'default: all but one of the cores on a GPU (at most 12), a '
                         'quarter of them on a CPU', shared=True)
    resume: object = field(None, 'continue a run: its last.pt, or the newest unfinished one '
                           'under --project', nargs='?', const=True)
    name: str = field('exp', shared=True)
    project: str = field('runs/train', shared=True)
    exist_ok: bool = field(False, shared=True)
    hyp: object = field(None, 'hyperparameter YAML (default: data/hyp.finetune.yaml with '
                        '--weights and no -sr, else data/hyp.scratch.yaml)')
    seed: int = field(0, 'random seed', type=at_least(0))
    notest: bool = field(False, 'evaluate only after the last epoch', action='store_true')
    nosave: bool = field(False, 'write no checkpoints', action='store_true')
    cache_images: bool = field(None, 'keep the decoded training images in RAM (default: when '
                               'they take under a quarter of the free memory)',
                               action=argparse.BooleanOptionalAction)
    adam: bool = field(False, "Adam even if the hyp file says 'optimizer: sgd'",
                       action='store_true')
    multi_scale: bool = field(False, 'random size per batch', action='store_true')
    rect: bool = field(False, 'rectangular batches, no mosaic', action='store_true')
    amp: bool = field(True, 'mixed precision (default on): fp16 + GradScaler on CUDA, bf16 on '
                      'CPUs with bf16 instructions; --no-amp for fp32',
                      action=argparse.BooleanOptionalAction)
    sync_bn: bool = field(False, 'SyncBatchNorm under DDP', action='store_true')
    sr: bool = field(False, 'sparse training: L1 on the BN gammas that --prune mode may remove',
                     flags=['-sr', '--sr'], action='store_true')
    s: float = field(0.001, 'sparsity strength', type=float)  # checked in check(): NaN too
    prune: int = field(0, '0: convs not tied to others, 1: also shortcut/SE-tied, 2: residual '
                       'blocks', type=int, choices=[0, 1, 2])
    sr_schedule: str = field('constant', 'decay: a tenth of --s over the last 30%% of the epochs',
                             choices=['constant', 'decay'])
    sr_flops: bool = field(False, "weigh each gamma's push by its channel's BFLOPs (use with the "
                           "prune scripts' --rank layer)", action='store_true')
    sr_target: float = field(None, 'aim at the slim cut leaving KEEP of the BFLOPs (e.g. 0.3): '
                             'its channels get the push and drop out of a growing share of the '
                             'images, gone at --sr-fade of the epochs (then prune with '
                             'slim_prune.py --rank layer)', type=unit_float, metavar='KEEP')
    sr_fade: float = field(FADE, 'with --sr-target: share of the epochs over which the cut fades '
                           'out', type=unit_float, metavar='SHARE')
    sr_round: int = field(1, 'with --sr-target: every layer keeps a multiple of N channels (8 or '
                          '16 suit CPU and GPU kernels; then prune with --round N)',
                          type=at_least(1), metavar='N')
    t_cfg: str = field('', 'teacher cfg (a .pt holds its own)', flags=['--t_cfg', '--t-cfg'])
    t_weights: str = field('', 'teacher weights: distill', flags=['--t_weights', '--t-weights'])
    KDstr: int = field(1, '1 outputs, 2 teacher-bounded, 3 imitation, 4 +features, 5 '
                       '+fine-grained mask, 6 objectness-scaled outputs',
                       flags=['--KDstr', '--kdstr'], type=int, choices=[1, 2, 3, 4, 5, 6])
    kd_weight: float = field(1.0, 'gain of the distillation terms', type=float)
    kd_T: float = field(3.0, 'softmax temperature for classes', flags=['--kd-T', '--kd-t'],
                        type=positive_float)
    kd_feature: str = field('l2', 'feature distance for --KDstr 4 and 5', choices=['l2', 'l1'])
    teacher_only: bool = field(False, "no label loss: the teacher's outputs are the only target "
                               '(--t_weights; --KDstr 1 or 6), so photos without labels will do',
                               action='store_true')
    images: list = field([], "train on these photos (folders, lists or globs) instead of the "
                         ".data file's train=", nargs='+', metavar='SOURCE')
    quantized: int = field(0, 'QAT: 1 Google 8-bit, 2 DoReFa, 3 TensorRT-style (0: off)',
                           type=int, choices=[0, 1, 2, 3])
    w_bits: int = field(8, 'QAT weight bits', type=int)
    a_bits: int = field(8, 'QAT activation bits', type=int)
    BN_Fold: bool = field(False, 'QAT: fold BN into the conv while training',
                          flags=['--BN_Fold', '--bn-fold'], action='store_true')
    FPGA: bool = field(False, 'QAT: every scale a power of two', flags=['--FPGA', '--fpga'],
                       action='store_true')
    quant_observer: str = field('', 'activation ranges (default: ema)',
                                choices=['', 'minmax', 'ema', 'percentile'])
    float_heads: bool = field(False, "QAT: the heads' convs keep a float output, as "
                              "quantize/ptq.py's do (not for the fixed-point exports)",
                              action='store_true')
    quant_freeze_epoch: int = field(-1, 'freeze observers and folded BN from this epoch '
                                    '(default: at 70%% of the epochs)', type=at_least(-1))
    sparse24: bool = field(False, "2:4 structured sparsity (the cfg's sparse=1 convs, else all "
                           'that can): magnitude masks from the start weights, kept every step',
                           action='store_true')
    extra: dict = field({}, cli=False)  # options of hooks added to utils.hooks.HOOK_BUILDERS
    hyp_values: dict = field(None, cli=False)  # the resolved hyp, kept for --resume

    def check_sizes(self):
        """--img-size N (or N N TEST to test at another size), or MIN MAX [TEST] with
        --multi-scale; each a multiple of 32."""
        sizes = list(self.img_size)
        if not sizes:
            return
        given = ' '.join(map(str, sizes))
        problem = next((size_problem(v) for v in sizes if size_problem(v)), '')
        if problem:
            raise OptionError(f'--img-size {given}: each {problem}')
        fixed = len(sizes) == 1 or (len(sizes) == 3 and sizes[0] == sizes[1])
        if not self.multi_scale and not fixed:  # a MIN no batch would use
            raise OptionError(f'--img-size {given}: one size (or N N TEST); MIN MAX [TEST] is '
                              'for --multi-scale')
        if self.multi_scale and (len(sizes) not in (2, 3) or sizes[0] >= sizes[1]):
            raise OptionError(f'--img-size {given}: --multi-scale takes MIN MAX [TEST] with MIN '
                              'below MAX')

    def check(self):
        """Types, ranges and combinations, before any work is done."""
        self.validate()
        if not isinstance(self.hyp, (type(None), str, dict)):
            raise OptionError(f'--hyp {self.hyp!r}: a hyp YAML file (or a dict of overrides)')
        if not isinstance(self.resume, (type(None), bool, str)):
            raise OptionError(f'--resume {self.resume!r}: a last.pt, or nothing for the newest')
        if not isinstance(self.extra, dict):
            raise OptionError(f'extra options {self.extra!r}: a mapping of hook options')
        if self.epochs < 1:
            raise OptionError(f'--epochs must be 1 or more, got {self.epochs}')
        if self.batch_size < 1:
            raise OptionError(f'--batch-size must be 1 or more, got {self.batch_size}')
        if self.workers is not None and self.workers < 0:
            raise OptionError(f'--workers must be 0 or more, got {self.workers}')
        for flag, value in (('--s', self.s), ('--kd-weight', self.kd_weight)):
            if not 0 <= value < math.inf:  # NaN fails this too
                raise OptionError(f'{flag} is a gain, a number 0 or more, got {value}')
        self.check_sizes()
        if self.teacher_only and not self.t_weights:
            raise OptionError("--teacher-only trains on a teacher's outputs: give --t_weights "
                              '(and --t_cfg for darknet weights)')
        if self.teacher_only and self.KDstr not in (1, 6):
            raise OptionError(f'--teacher-only needs a strategy without labels: --KDstr 1 or 6, '
                              f'got {self.KDstr}')
        if self.float_heads and self.quantized not in (1, 3):
            raise OptionError('--float-heads is for --quantized 1 or 3')
        if self.pt and (not self.weights or str(self.weights).endswith('.pt')):
            raise OptionError('-pt loads darknet --weights trained for other classes: give a '
                              '.weights file (a .pt start adapts its heads by itself)')
        return self


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


def sizes(img_size):
    """--img-size N | MIN MAX [TEST] -> (train size, multi-scale range, test size)."""
    if len(img_size) == 1:
        return img_size[0], (img_size[0], img_size[0]), img_size[0]
    low, high = img_size[0], img_size[1]
    return high, (low, high), img_size[2] if len(img_size) > 2 else high


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


def own_cfg(weights):
    """--cfg's default: the cfg text a .pt holds (building the dense cfg under a pruned
    checkpoint would load a fraction of its tensors), else DEFAULT_CFG."""
    if str(weights).endswith('.pt') and Path(weights).is_file():
        return load_checkpoint(weights).get('cfg') or DEFAULT_CFG
    return DEFAULT_CFG


def cfg_label(opt):
    return f'the cfg in {opt.weights}' if '\n' in opt.cfg else opt.cfg


def default_hyp(weights, sr):
    """Fine-tuning settings when starting from weights, from-scratch settings otherwise. Sparse
    training keeps the larger rates: Adam moves a gamma by about lr per step, and the gammas
    must be able to travel from ~1 to 0. Aimed sparse training (--sr-target) needs them too: at
    the fine-tuning rates the network cannot adapt to losing its cut channels
    (docs/results/pruning.md)."""
    finetune = weights and not sr
    return str(ROOT / 'data' / ('hyp.finetune.yaml' if finetune else 'hyp.scratch.yaml'))


def resolve_resume(resume, project):
    """--resume with no path: the newest last.pt under the project of a run that has not
    finished (its last epoch is not its final one); a path is taken as given."""
    if resume is not True and resume != '':
        return Path(resume)
    unfinished = []
    for last in project_dir(project).glob('*/weights/last.pt'):
        try:
            ckpt = load_checkpoint(last)
        except WeightsError:
            continue
        opt = ckpt.get('opt') or {}
        if ckpt.get('optimizer') is not None and ckpt.get('epoch', 0) + 1 < opt.get('epochs', 0):
            unfinished.append(last)
    if not unfinished:
        raise WeightsError(f'--resume: no unfinished run (a last.pt before its final epoch) '
                           f'under {project}')
    found = max(unfinished, key=os.path.getmtime)
    LOGGER.info(f'--resume: the newest unfinished run under {project} is {found}')
    return found


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


def earlier_results(path, epoch):
    """results.csv's rows before ``epoch``; a file that cannot be read is set aside (renamed,
    said once) rather than cost the epoch that is being written."""
    if not path.exists():
        return []
    try:
        with open(path, newline='') as f:
            return [r for r in csv.DictReader(f)
                    if str(r.get('epoch', '')).isdigit() and int(r['epoch']) < epoch]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        aside = path.with_name(f'{path.name}.unreadable-{int(time.time())}')
        path.replace(aside)
        LOGGER.warning(f'WARNING: {path} cannot be read ({type(e).__name__}); set aside as '
                       f'{aside.name}, a new one starts at epoch {epoch + 1}')
        return []


def append_results(path, row):
    """Add the epoch's row to results.csv, dropping rows of this epoch or later (left by a run
    killed after writing them, which --resume redoes); the file is replaced whole."""
    rows = earlier_results(path, row['epoch'])
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(row), restval='', extrasaction='ignore')
    writer.writeheader()
    writer.writerows([*rows, row])
    atomic_write_text(path, text.getvalue())


def run(**kw):
    """Train with TrainOptions' fields as keywords; returns the final metrics dict (rank 0) or
    None (other ranks). A misspelt option is an OptionError naming the closest valid one."""
    opt = TrainOptions.from_kwargs(**kw)
    opt = opt.replace(hyp=str(opt.hyp) if isinstance(opt.hyp, Path) else opt.hyp,
                      img_size=list(opt.img_size))
    if opt.resume:
        ckpt_path = resolve_resume(opt.resume, opt.project)
        resumed = load_checkpoint(ckpt_path)
        saved = resumable_options(resumed, ckpt_path)
        opt = saved.replace(resume=str(ckpt_path), device=opt.device or saved.device,
                            workers=opt.workers)
        return _train(opt, resumed, ckpt_path.parent.parent)
    return _train(resolved(opt), None, None)


def resumable_options(ckpt, path):
    """The options a last.pt was trained with, once its training state is seen to be whole:
    numbers that are numbers, an epoch inside the run, an optimizer with its groups, an EMA.
    A checkpoint that fails is refused now, not after an epoch of work."""
    if ckpt.get('optimizer') is None or 'opt' not in ckpt:
        raise WeightsError(f'{path}: holds no training state (a stripped best.pt or an '
                           'exported checkpoint); resume from its last.pt')
    saved = ckpt['opt']
    if not isinstance(saved, dict):
        raise WeightsError(f'{path}: its saved options are not a mapping')
    missing = [k for k in TrainOptions.names() if k not in saved and k != 'extra']
    if missing:  # a default in its place would make it another run
        raise WeightsError(f"{path}: its saved options lack {', '.join(missing[:3])} (written "
                           'by another version, or damaged)')
    try:
        opt = TrainOptions.from_dict(saved).check()
        check_hyp(saved.get('hyp_values'), f'{path} hyp_values')
    except (OptionError, TypeError, AttributeError) as e:
        raise WeightsError(f'{path}: its saved options: {e}') from None
    epoch = ckpt.get('epoch')
    if isinstance(epoch, bool) or not isinstance(epoch, int) or not 0 <= epoch < opt.epochs:
        raise WeightsError(f'{path}: epoch {epoch!r} is not one of the run\'s {opt.epochs} '
                           'epochs (a finished run resumes nothing; a number out of range is a '
                           'damaged file)')
    groups = ckpt['optimizer'].get('param_groups') if isinstance(ckpt['optimizer'], dict) \
        else None
    if not groups or not isinstance(ckpt['optimizer'].get('state'), dict):
        raise WeightsError(f'{path}: its optimizer state has no parameter groups')
    for key in ('ema', 'scheduler', 'model'):
        if not isinstance(ckpt.get(key), dict):
            raise WeightsError(f'{path}: no {key} state to resume from')
    best = ckpt.get('best_fitness')
    if isinstance(best, bool) or not isinstance(best, (int, float)) or \
            not (best == -1 or 0 <= best <= 1):  # -1: nothing eligible evaluated yet
        raise WeightsError(f'{path}: best_fitness {best!r} is not a fitness (0..1, or -1)')
    return opt


def restore(resumed, source, model, optimizer, scheduler, scaler=None, ema=None):
    """Load a checkpoint's training state into a run's objects; a part that does not fit (a
    structure torch refuses, or values a step could not use) is a WeightsError naming it."""
    saved = resumed['optimizer'].get('state', {})
    if not all(isinstance(e, dict) and all(isinstance(t, torch.Tensor) for t in e.values())
               for e in saved.values()):
        raise WeightsError(f'{source}: its optimizer state holds values that are not tensors')
    fresh = [dict(g) for g in optimizer.param_groups]
    lacking = set(scheduler.state_dict()) - set(resumed['scheduler'])
    if lacking:
        raise WeightsError(f"{source}: its schedule lacks {', '.join(sorted(lacking))}")
    parts = [('model', model), ('optimizer', optimizer), ('scheduler', scheduler)]
    parts += [('scaler', scaler)] if scaler else []
    parts += [('ema', ema.ema)] if ema else []
    for key, target in parts:
        try:
            target.load_state_dict(resumed[key])
        except (KeyError, ValueError, RuntimeError, TypeError, IndexError, AttributeError) as e:
            lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
            why = ' '.join(lines[:2])[:200] if lines else type(e).__name__
            raise WeightsError(f'{source}: its {key} state does not fit this run ({why})') \
                from None
    for key in ('model', 'ema'):
        bad = next((k for k, t in resumed[key].items() if isinstance(t, torch.Tensor) and
                    t.is_floating_point() and not torch.isfinite(t).all()), None)
        if bad:
            raise WeightsError(f'{source}: its {key} state holds NaN or infinity ({bad})')
    problem = loaded_state_problem(optimizer, scheduler, fresh)
    if problem:
        raise WeightsError(f'{source}: {problem}')
    if scheduler.last_epoch != resumed['epoch'] + 1:  # one schedule step per epoch
        raise WeightsError(f"{source}: its schedule is at epoch {scheduler.last_epoch}, the "
                           f"checkpoint at {resumed['epoch'] + 1}")
    if ema:
        updates = resumed.get('ema_updates')
        if isinstance(updates, bool) or not isinstance(updates, int) or updates < 0:
            raise WeightsError(f'{source}: ema_updates={updates!r} is not a count')
        steps = [float(s['step']) for s in optimizer.state.values() if 'step' in s]
        if any(not (0 <= v <= updates and v.is_integer()) for v in steps):
            raise WeightsError(f'{source}: an optimizer step count outside the {updates} steps '
                               'the run has taken')
        ema.updates = updates


def resolved(opt):
    """A new run's options with the defaults that depend on others filled in, checked."""
    if not opt.hyp:
        opt = opt.replace(hyp=default_hyp(opt.weights, opt.sr))
    if not opt.cfg:
        opt = opt.replace(cfg=own_cfg(opt.weights))
    if not opt.img_size:
        net = load_blocks(opt.cfg)[0]
        opt = opt.replace(img_size=[net.get('width')])
    return opt.check()


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
            else select_device(opt.device)
        seed_everything(opt.seed + rank)
        builders = (sparsity_hook, sparse24_hook, quant_hook, distill_hook)  # on_model order:
        # sparsity and 2:4 read the float graph (the swap keeps its conv and BN tensors),
        # distillation taps the modules the model finally has; their options fail here, before
        # the dataset is read (or, the first time, generated)
        self.hooks = [h for h in (b(opt) for b in builders) if h] + build_hooks(opt)
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
        self.train_loader, self.train_set = create_dataloader(
            opt.images or data_cfg['train'], self.nc, self.train_size, opt.batch_size // world,
            augment=True, hyp=hyp, rect=opt.rect, workers=self.workers, shuffle=True,
            cache_images=self._cache(data_cfg), prefix='train: ' if self.main else '',
            distributed=world > 1, seed=opt.seed, seg_nc=seg_nc, pin_memory=cuda)
        self.val_loader = None
        if self.main and not (opt.teacher_only and 'valid' not in data_cfg):
            self.val_loader, _ = create_dataloader(
                data_cfg['valid'], self.nc, test_size, opt.batch_size // world * 2,
                workers=self.workers, prefix='valid: ', seg_nc=seg_nc, pin_memory=cuda)
            save_options({k: v for k, v in opt.to_dict().items() if k != 'hyp_values'},
                         self.save_dir / 'opt.yaml')
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
        check_tasks(model, opt, self.nc, self.seg_names)
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
                                    f"{self.optimizer.param_groups[1]['lr']:.2e} "
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


def check_tasks(model, opt, nc, seg_names):
    """The dataset has what the network learns: its detection classes, its masks."""
    where = cfg_label(opt)
    if model.yolo_layers and model.nc != nc:
        raise WeightsError(f'{where}: the model detects {model.nc} classes, {opt.data} has {nc}')
    if model.seg_layers and len(seg_names or []) != model.seg_nc:
        have = f'{len(seg_names)} segmentation classes' if seg_names else 'no masks'
        raise WeightsError(f'{where}: the model segments {model.seg_nc} classes, {opt.data} '
                           f'has {have} (seg_classes= and seg_names= in the .data)')


def _rescale(imgs, low, high, stride=32):
    """Multi-scale training: a random size in [low, high], a multiple of the stride."""
    size = random.randrange(low, high + stride, stride) // stride * stride
    if size == imgs.shape[-1]:
        return imgs
    return F.interpolate(imgs, size=(size, size), mode='bilinear', align_corners=False)


KD_FLAGS = ('--KDstr', '--kdstr', '--kd-weight', '--kd-T', '--kd-t', '--kd-feature')


def parse_opt(argv=None):
    p = Parser(prog='train.py', description=__doc__)
    opt = TrainOptions.add_fields(p).parse_args(argv)
    given = [a.split('=')[0] for a in (sys.argv[1:] if argv is None else argv)]
    if not opt.t_weights and not opt.resume and set(given) & set(KD_FLAGS):
        flag = next(a for a in given if a in KD_FLAGS)
        raise OptionError(f'{flag} sets how to distill, but there is no teacher: give '
                          '--t_weights (and --t_cfg for darknet weights)')
    return opt


@friendly_errors
def main(argv=None):
    run(**vars(parse_opt(argv)))


if __name__ == '__main__':
    main()
