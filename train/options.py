"""train.py's options: every flag, its default, type, range and help, in TrainOptions;
the defaults that depend on other options (hyp, cfg, size) are filled in by resolved()."""
from __future__ import annotations

import argparse
import dataclasses
import math
from pathlib import Path

from distill.strategies import LABEL_FREE
from models.cfg import load_blocks
from models.weights import load_checkpoint
from prune.aim import FADE
from utils.errors import OptionError
from utils.options import (Options, at_least, field, positive_float, size_problem,
                           unit_float)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CFG = 'cfg/yolov3-mini.cfg'
KD_FLAGS = ('--KDstr', '--kdstr', '--kd-weight', '--kd-T', '--kd-t', '--kd-feature')


def bit_width(text):
    """An argparse type: a bit width any quantization mode could take, 1 to 16 (QuantConfig
    narrows it per mode)."""
    value = at_least(1)(text)
    if value > 16:
        raise argparse.ArgumentTypeError(f'must be 16 or less, got {value}')
    return value


bit_width.__name__ = 'int >= 1'  # validate() checks it as a whole number first


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
    workers: int | None = field(None, 'default: all but one of the cores on a GPU (at most '
                                '12), a quarter of them on a CPU', shared=True)
    resume: bool | str | None = field(None, 'continue a run: its last.pt, or the newest '
                                      'unfinished one under --project', nargs='?', const=True)
    name: str = field('exp', shared=True)
    project: str = field('runs/train', shared=True)
    exist_ok: bool = field(False, shared=True)
    hyp: str | dict | None = field(None, 'hyperparameter YAML (default: '
                                   'data/hyp.finetune.yaml with --weights and no -sr, else '
                                   'data/hyp.scratch.yaml)')
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
    w_bits: int = field(8, 'QAT weight bits (1..16; each mode narrows it)', type=bit_width)
    a_bits: int = field(8, 'QAT activation bits (1..16; each mode narrows it)', type=bit_width)
    BN_Fold: bool = field(False, 'QAT: fold BN into the conv while training',
                          flags=['--BN_Fold', '--bn-fold'], action='store_true')
    FPGA: bool = field(False, 'QAT: every scale a power of two', flags=['--FPGA', '--fpga'],
                       action='store_true')
    quant_observer: str = field('', 'activation ranges (default: ema)',
                                choices=['', 'minmax', 'ema', 'percentile'])
    float_heads: bool = field(False, "QAT: the heads' convs keep a float output, as "
                              "quantize/ptq.py's do (not for the fixed-point exports)",
                              action='store_true')
    quant_freeze_epoch: int = field(-1, 'freeze observers and BN statistics from this epoch '
                                    '(default: at 70%% of the epochs; 0: from the start)',
                                    type=at_least(-1))
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

    def check_teacher(self):
        """Distillation settings without a teacher would be silently ignored."""
        if self.t_weights or self.resume:
            return
        fields = {f.name: f for f in dataclasses.fields(self)}
        for name in ('KDstr', 'kd_weight', 'kd_T', 'kd_feature'):
            if getattr(self, name) != fields[name].default:
                flag = (fields[name].metadata['flags'] or [f"--{name.replace('_', '-')}"])[0]
                raise OptionError(f'{flag} sets how to distill, but there is no teacher: give '
                                  '--t_weights (and --t_cfg for darknet weights)')

    def check(self):
        """Types, ranges and combinations, before any work is done."""
        self.validate()
        if not isinstance(self.hyp, (type(None), str, dict)):
            raise OptionError(f'--hyp {self.hyp!r}: a hyp YAML file (or a dict of overrides)')
        if not isinstance(self.resume, (type(None), bool, str)):
            raise OptionError(f'--resume {self.resume!r}: a last.pt, or nothing for the newest')
        self.check_teacher()
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
        if self.teacher_only and self.KDstr not in LABEL_FREE:
            raise OptionError(f'--teacher-only needs a strategy without labels: --KDstr 1 or 6, '
                              f'got {self.KDstr}')
        if self.float_heads and self.quantized not in (1, 3):
            raise OptionError('--float-heads is for --quantized 1 or 3')
        if self.pt and (not self.weights or str(self.weights).endswith('.pt')):
            raise OptionError('-pt loads darknet --weights trained for other classes: give a '
                              '.weights file (a .pt start adapts its heads by itself)')
        return self


def sizes(img_size):
    """--img-size N | MIN MAX [TEST] -> (train size, multi-scale range, test size)."""
    if len(img_size) == 1:
        return img_size[0], (img_size[0], img_size[0]), img_size[0]
    low, high = img_size[0], img_size[1]
    return high, (low, high), img_size[2] if len(img_size) > 2 else high


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
