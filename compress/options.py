"""compress.py's options: CompressOptions holds each flag with its default, type, range and
help; check() refuses what cannot give a useful run, check_inputs() reads the files first."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from compress.stages import STAGES
from models.tasks import check_tasks
from prune.masks import RANKS
from prune.methods import METHODS, OPTIONS
from prune.plan import PruneError
from prune.surgery import prune_model
from quantize.loader import load_model
from train import ROOT, TrainOptions
from utils.datasets import DataError, load_items, parse_data_cfg
from utils.errors import OptionError
from utils.hyp import load_hyp
from utils.items import image_files
from utils.options import Options, field, image_size, non_negative_float, unit_float


def image_size_or_0(text):
    return 0 if text.strip() == '0' else image_size(text)


@dataclasses.dataclass
class CompressOptions(Options):
    """Everything a compress run is told; compress.run(**kw) and the command line build it."""
    cfg: str = field('', shared=True)
    weights: str = field('weights/yolov3-mini.pt', shared=True)
    data: str = field('data/shapes.data', shared=True)
    batch_size: int = field(16, shared=True)
    device: str = field('', shared=True)
    workers: int | None = field(None, "default: train.py's (a quarter of the cores on a CPU, all "
                                'but one, at most 12, on a GPU)', shared=True)
    project: str = field('runs/compress', shared=True)
    name: str = field('exp', shared=True)
    img_size: int = field(320, 'evaluation and training size', type=image_size)
    img_size_sparse: int = field(0, 'train size of the sparse stage (0: --img-size); it is '
                                 'evaluated and fine-tuned at --img-size', type=image_size_or_0)
    no_cache: bool = field(False, 'decode the training images every epoch (by default they stay '
                           'in RAM when they take under a quarter of the free memory)',
                           action='store_true')
    s: float = field(0.005, 'sparsity strength', type=non_negative_float)
    prune_mode: int = field(1, "train.py's --prune: which gammas the sparsity pushes", type=int,
                            choices=[0, 1, 2])
    sr_flops: bool = field(False, "train.py's --sr-flops", action='store_true')
    method: str = field('', 'default: slim, or search with --images', choices=['', *METHODS])
    percent: float = field(0.5, 'with --keep-bflops 0', type=OPTIONS['percent'][1]['type'])
    keep_bflops: float = field(0.3, 'the share of the BFLOPs to keep: the sparse stage aims at '
                               "that cut (train.py's --sr-target) and pruning takes the smallest "
                               'percent that leaves at most that share; 0: use --percent (not '
                               'for --method layer)', type=float)
    sr_fade: float = field(TrainOptions.sr_fade, "train.py's --sr-fade: share of the sparse "
                           'epochs over which the cut fades out', type=unit_float)
    hyp_sparse: str = field(str(ROOT / 'data' / 'hyp.sparse.yaml'), "the sparse stage's hyp "
                            "file ('': train.py's, data/hyp.scratch.yaml)")
    rank: str = field('layer', "the prune script's --rank", choices=RANKS)
    round: int = field(8, 'every pruned layer keeps a multiple of this many channels (the aimed '
                       "cut's train.py --sr-round and the prune method's --round): "
                       "onnxruntime's x86 kernels work in blocks of 8 or 16",
                 type=OPTIONS['round'][1]['type'])
    shortcuts: int = field(2, 'layer pruning: blocks to remove', type=int)
    KDstr: int = field(0, 'distill the fine-tune from the baseline with this strategy (0: none, '
                       'the default: none helped, docs/results/distillation.md)', type=int,
                       choices=range(7))
    kd_weight: float = field(1.0, '', type=non_negative_float)
    hyp_finetune: str = field('', "the fine-tune's hyp file (default: train.py's, "
                              'data/hyp.finetune.yaml)')
    quantized: int = field(3, '0 = no QAT', type=int, choices=[0, 1, 2, 3])
    epochs_sparse: int = field(16, '', type=int)
    epochs_finetune: int = field(3, '', type=int)
    sparse24: bool = field(False, 'add a 2:4 structured sparsity stage after the fine-tune (QAT '
                           'keeps it)', action='store_true')
    epochs_sparse24: int = field(2, '', type=int)
    hyp_sparse24: str = field(str(ROOT / 'data' / 'hyp.sparse24.yaml'), "the 2:4 stage's hyp "
                              "file ('': train.py's, data/hyp.finetune.yaml)")
    epochs_qat: int = field(1, '', type=int)
    images: list = field([], 'compress from these unlabelled photos (folders, lists or globs): the '
                         'dense model is the teacher of every training stage (train.py '
                         '--teacher-only), no labels are read and the sparse stage is skipped',
                         nargs='+', metavar='SOURCE')
    holdout: float = field(0.125, 'share of the --images photos held out from training to '
                           "measure each stage's agreement with the teacher", type=unit_float)
    calib: int = field(32, '--method search: how many photos each cut is measured on',
                       type=OPTIONS['calib'][1]['type'])
    latency_runs: int = field(20, '', type=int)
    skip: list = field([], '', nargs='*', choices=STAGES[1:])

    def check(self):
        """Options that cannot give a useful run are refused before any stage starts."""
        self.validate()
        self.method = self.method or ('search' if self.images else 'slim')
        if self.method == 'search' and not self.images:
            raise OptionError('--method search measures each cut on photos: give --images '
                              'SOURCE...')
        if self.images and self.KDstr not in (0, 1, 6):
            raise OptionError(f'--KDstr {self.KDstr} needs labels; with --images the stages learn '
                              'from the teacher alone: --KDstr 1 or 6 (0: 6)')
        if self.images and not 0 < self.holdout < 1:
            raise OptionError(f'--holdout is a share of the --images photos, in (0, 1); got '
                              f'{self.holdout}')
        if not (self.keep_bflops == 0 or 0 < self.keep_bflops < 1):
            raise OptionError(f'--keep-bflops is a share in (0, 1), or 0 to use --percent; got '
                              f'{self.keep_bflops}')
        if not 0 <= self.percent < 1:
            raise OptionError(f'--percent must be in [0, 1), got {self.percent}')
        for key in ('epochs_sparse', 'epochs_finetune', 'epochs_sparse24', 'epochs_qat'):
            if getattr(self, key) < 1:
                raise OptionError(f"--{key.replace('_', '-')} must be 1 or more, got "
                                  f'{getattr(self, key)}')
        if self.shortcuts < 0:
            raise OptionError('--shortcuts must be 0 or more')
        if self.latency_runs < 1 and 'latency' not in self.skip:
            raise OptionError(f'--latency-runs {self.latency_runs}: 1 or more (or --skip '
                              'latency)')
        return self


def check_inputs(opt):
    """The model, the dataset and the hyp files are read now: a bad one fails before a run
    folder exists, not stages later."""
    model = load_model(opt['weights'], opt['cfg'] or None)
    data = parse_data_cfg(opt['data'])
    for key in ('valid',) if opt['images'] else ('train', 'valid'):
        if not Path(data[key]).exists():
            raise DataError(f"{opt['data']}: {key}= {data[key]} does not exist")
    check_tasks(model, opt['cfg'] or opt['weights'], opt['data'], data['classes'],
                data.get('seg_names'))
    if opt['images']:
        image_files(opt['images'])  # a source without photos fails now
    else:
        load_items(data['train'], data['classes'])  # an empty or unreadable list fails now
    for key in ('hyp_sparse', 'hyp_finetune', 'hyp_sparse24'):
        if opt[key]:
            load_hyp(opt[key])
    if opt['keep_bflops'] and 'prune' not in opt['skip']:
        check_reachable(model.float().eval(), opt)


def check_reachable(model, opt):
    """--keep-bflops within the method's deepest cut, which sparse training does not move
    (the same layers, heads and per-layer floors stay)."""
    method = METHODS[opt['method']]
    kw = method.resolve(**{k: opt[k] for k in method.options if k in opt})
    if 'percent' not in kw:
        return
    try:
        deepest = prune_model(model, method.plan(model, **(kw | {'percent': 0.99})))
    except PruneError:
        return  # the method refuses that deep a cut on the dense model; the stage will bisect
    share = deepest.info(opt['img_size'])['bflops'] / model.info(opt['img_size'])['bflops']
    if share > opt['keep_bflops']:
        raise OptionError(f"--keep-bflops {opt['keep_bflops']}: out of reach, the deepest cut "
                          f"of --method {opt['method']} keeps {share:.1%} of the BFLOPs (fixed "
                          f'layers, heads and the per-layer floor stay)')
