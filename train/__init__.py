"""Train a YOLO detector from a darknet cfg: the one loop sparsity, QAT and distillation hook into.

    python3 train.py                                     # yolov3-mini on the built-in dataset
    python3 train.py --cfg cfg/yolov3-tiny.cfg --data data/voc.data --weights yolov3-tiny.weights
    python3 train.py --data my.data -pt --cfg cfg/yolov3.cfg --weights yolov3.weights  # COCO start
    python3 train.py --resume                            # continue the latest interrupted run
    torchrun --nproc_per_node 2 train.py --batch-size 32 # DDP: NCCL on GPUs, gloo on CPUs

Each epoch evaluates the EMA weights (utils/evaluate.py) and writes results.csv, results.png,
last.pt and best.pt (fitness = 0.1 mAP@0.5 + 0.9 mAP@0.5:0.95) into runs/train/exp*/, atomically.
Every option is a field of TrainOptions (train/options.py): its default, flag and help live there.
"""
from __future__ import annotations

import sys
from pathlib import Path

from models.weights import load_checkpoint
from train.checkpoint import resolve_resume, restore, resumable_options
from train.options import (DEFAULT_CFG, KD_FLAGS, ROOT, TrainOptions, default_hyp, own_cfg,
                           resolved, sizes)
from train.trainer import Trainer, TrainingError, train_in_process
from utils.cli import friendly_errors
from utils.errors import OptionError
from utils.hyp import load_hyp
from utils.options import Parser

__all__ = ['DEFAULT_CFG', 'ROOT', 'Trainer', 'TrainOptions', 'TrainingError', 'default_hyp',
           'load_hyp', 'main', 'own_cfg', 'parse_opt', 'restore', 'resolved', 'resumable_options',
           'run', 'sizes']


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
        return train_in_process(opt, resumed, ckpt_path.parent.parent)
    return train_in_process(resolved(opt), None, None)




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
