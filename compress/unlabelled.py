"""compress.py --images: compressing a detector from unlabelled photos. The dense model is the
teacher: the recovery and QAT stages train on its outputs alone (train.py --teacher-only), and
every stage is scored by its agreement with the teacher on photos held out from training (mAP of
the stage's detections against the teacher's own, utils/agreement.py), beside the true mAP where
the .data file has a labelled valid= set."""
from __future__ import annotations

from pathlib import Path

import torch

from models.weights import darknet_cfg
from quantize.loader import load_for_inference
from utils.agreement import agreement
from utils.datasets import create_dataloader
from utils.files import atomic_write_text
from utils.items import image_files
from utils.torch_utils import select_device

LABEL_FREE_KD = 6  # objectness-scaled output distillation: boxes, objectness and classes


def split_images(opt, run_dir):
    """(training list, held-out list) of --images, written once in the run folder: every n-th
    photo of the sorted list is held out, n from --holdout."""
    train, held = Path(run_dir) / 'images_train.txt', Path(run_dir) / 'images_holdout.txt'
    if not held.is_file():
        files = sorted({str(f.resolve()) for f in image_files(opt['images'])})
        every = max(2, round(1 / opt['holdout']))
        kept = [f for k, f in enumerate(files) if k % every]
        atomic_write_text(train, '\n'.join(kept) + '\n')
        atomic_write_text(held, '\n'.join(files[::every]) + '\n')
    return str(train), str(held)


def teacher_options(run):
    """train.run's options for a stage trained on the teacher's outputs alone."""
    base = run.state['done']['baseline']
    return {'t_cfg': base['cfg'], 't_weights': base['weights'], 'teacher_only': True,
            'KDstr': run.opt['KDstr'] or LABEL_FREE_KD, 'kd_weight': run.opt['kd_weight'],
            'images': [split_images(run.opt, run.dir)[0]]}


def agreement_figures(weights, cfg, run):
    """mAP@0.5 and mAP@0.5:0.95 of a stage's detections against the teacher's on the held-out
    photos."""
    opt, device = run.opt, select_device(run.opt['device'])
    base = run.state['done']['baseline']
    teacher = load_for_inference(base['weights'], darknet_cfg(base['weights'], base['cfg']),
                                 device)
    student = load_for_inference(str(weights), darknet_cfg(weights, cfg), device)
    loader, _ = create_dataloader(split_images(opt, run.dir)[1], max(teacher.nc, 1),
                                  opt['img_size'], opt['batch_size'], workers=0)
    batches = (imgs.to(device).float() / 255 for imgs, *_ in loader)
    with torch.no_grad():
        got = agreement(teacher, student, batches)
    return {'agree50': round(got['map50'], 4), 'agree50_95': round(got['map50_95'], 4)}
