"""The distillation hook of train.py (--t_cfg --t_weights --KDstr --kd-weight --kd-T).

The teacher runs in eval mode under no_grad on the batch the student trains on (augmented the
same way), and each strategy's named terms join the loss and results.csv, each times
--kd-weight and the detection loss's gain for its kind (box, cls, obj; kd_feat from the hyp file
or 0.05):

  1  kd_cls kd_obj          output distillation (distill/output.py)
  2  kd_box kd_cls          teacher-bounded regression (distill/bounded.py)
  3  kd_box kd_cls          imitation at the positive cells (distill/imitation.py)
  4  + kd_feat              and feature imitation at the head inputs (distill/feature.py)
  5  + kd_feat (masked)     with the fine-grained imitation mask
  6  kd_box kd_cls kd_obj   objectness-scaled output distillation (distill/output.py)

A network that segments adds kd_seg (distill/segment.py: per-pixel KL at --kd-T, times the hyp's
seg gain) whatever the strategy. The teacher may be any cfg with the same classes, heads and
anchors for each task both networks have (a pruned student's unpruned original, or a
layer-pruned one).
"""
from __future__ import annotations

import torch
import torch.distributed as dist

from distill.bounded import bounded_losses
from distill.common import positives
from distill.feature import (FeatureTaps, feature_loss, head_channels, imitation_mask,
                             make_adapters)
from distill.imitation import imitation_losses
from distill.output import output_losses
from distill.segment import segmentation_kl
from distill.strategies import FEATURE_STRATEGIES, LABEL_FREE, Strategy
from models.weights import WeightsError, load_model
from utils.errors import OptionError
from utils.hooks import TrainHook
from utils.loss import YoloLoss

STRATEGIES = tuple(int(s) for s in Strategy)
FEATURE_GAIN = 0.05  # kd_feat is relative (see feature_loss); hyp files may set 'kd_feat'


class DistillHook(TrainHook):
    name = 'distill'

    def __init__(self, strategy, teacher, weight=1.0, temperature=3.0, feature='l2'):
        if strategy not in STRATEGIES:
            raise OptionError(f'--KDstr must be one of {STRATEGIES}, got {strategy}')
        if feature not in ('l1', 'l2'):
            raise OptionError(f"--kd-feature must be l1 or l2, got '{feature}'")
        self.strategy, self.weight, self.temperature, self.feature = (strategy, weight,
                                                                      temperature, feature)
        self.teacher = teacher.eval().requires_grad_(False)
        self.adapters, self.assigner = None, None

    def tasks(self, model):
        """The tasks both networks have: (detection, segmentation)."""
        return (bool(model.yolo_layers and self.teacher.yolo_layers),
                bool(model.seg_layers and self.teacher.seg_layers))

    def on_model(self, model):
        check_compatible(model, self.teacher)
        if self.strategy in FEATURE_STRATEGIES and self.tasks(model)[0]:
            self.student_taps, self.teacher_taps = FeatureTaps(model), FeatureTaps(self.teacher)
            self.adapters = make_adapters(head_channels(model, 'student'),
                                          head_channels(self.teacher, 'teacher'))
        return model

    def parameters(self, device):
        self.teacher.to(device)
        if self.adapters is None:
            return []
        return list(self.adapters.to(device).parameters())

    def extra_loss(self, model, imgs, preds, targets):
        with torch.no_grad():
            t_all = self.teacher(imgs)[1]
        losses = {}
        detect, segment = self.tasks(model)
        if detect:
            losses |= self._detection_losses(model, imgs, model.det_heads(preds),
                                             self.teacher.det_heads(t_all), targets)
        if segment:
            losses['kd_seg'] = segmentation_kl(model.seg_logits(preds),
                                               self.teacher.seg_logits(t_all), self.temperature)
        return {k: v * self.weight * self._gain(k) for k, v in losses.items()}

    def _detection_losses(self, model, imgs, preds, t_preds, targets):
        heads = [model.module_list[j] for j in model.yolo_layers]
        for s, t in zip(preds, t_preds):
            if s.shape != t.shape:
                raise WeightsError(f'student head {tuple(s.shape)} and teacher head '
                                   f'{tuple(t.shape)} differ; distillation needs equal heads')
        if self.strategy in LABEL_FREE:
            return output_losses(preds, t_preds, heads, self.temperature,
                                 boxes=self.strategy == Strategy.OUTPUT_BOXES)
        return self._matched_losses(model, heads, preds, t_preds, targets, imgs.shape[2:])

    def _gain(self, name):
        """The detection loss's own gain for the same kind of term, so that --kd-weight 1 puts
        distillation on the scale of the loss it adds to."""
        key = {'kd_box': 'box', 'kd_cls': 'cls', 'kd_obj': 'obj', 'kd_feat': 'kd_feat',
               'kd_seg': 'seg'}[name]
        return self.hyp.get(key, FEATURE_GAIN) if key == 'kd_feat' else self.hyp[key]

    def _matched_losses(self, model, heads, preds, t_preds, targets, img_hw):
        if self.assigner is None:  # the same positives the detection loss trains
            self.assigner = YoloLoss(model, self.hyp)
        targets = targets.to(preds[0].device)
        matches = positives(self.assigner, heads, preds, targets, img_hw)
        if self.strategy == Strategy.BOUNDED:
            return bounded_losses(preds, t_preds, heads, matches)
        losses = imitation_losses(preds, t_preds, heads, matches, self.temperature)
        if self.strategy in FEATURE_STRATEGIES:
            masks = None
            if self.strategy == Strategy.FINE_FEATURES:
                masks = [imitation_mask(h, p.shape[2:4], p.shape[0], targets, img_hw)
                         for h, p in zip(heads, preds)]
            losses['kd_feat'] = feature_loss(self.student_taps.features,
                                             self.teacher_taps.features, self.adapters,
                                             self.feature, masks)
        return losses

    def after_backward(self, model, epoch):
        """Adapters live outside DDP: average their gradients over the ranks here."""
        if self.adapters is None or not (dist.is_available() and dist.is_initialized()):
            return
        for p in self.adapters.parameters():
            if p.grad is not None:
                dist.all_reduce(p.grad)
                p.grad /= dist.get_world_size()

    def state(self):
        return {'adapters': self.adapters.state_dict()} if self.adapters is not None else {}

    def load_state(self, state):
        if self.adapters is not None and state.get('adapters'):
            self.adapters.load_state_dict(state['adapters'])


def check_compatible(student, teacher):
    shared = (student.yolo_layers and teacher.yolo_layers) or \
        (student.seg_layers and teacher.seg_layers)
    if not shared:
        raise WeightsError('teacher and student share no task (detection, segmentation) to '
                           'distill')
    if student.seg_layers and teacher.seg_layers and student.seg_nc != teacher.seg_nc:
        raise WeightsError(f'teacher segments {teacher.seg_nc} classes, the student '
                           f'{student.seg_nc}; distillation needs them equal')
    if not (student.yolo_layers and teacher.yolo_layers):
        return
    s_heads = [student.module_list[j] for j in student.yolo_layers]
    t_heads = [teacher.module_list[j] for j in teacher.yolo_layers]
    if student.nc != teacher.nc or len(s_heads) != len(t_heads):
        raise WeightsError(f'teacher: {teacher.nc} classes in {len(t_heads)} heads, student: '
                           f'{student.nc} in {len(s_heads)}; distillation needs them equal')
    for k, (s, t) in enumerate(zip(s_heads, t_heads)):
        if not torch.allclose(s.anchors, t.anchors):
            raise WeightsError(f'teacher: head {k} has anchors {t.anchors.tolist()}, the '
                               f'student {s.anchors.tolist()}; distillation needs them equal')


def distill_hook(opt):
    """The hook for train.py's --t_weights flags (TrainOptions), or None without a teacher."""
    if not opt.t_weights:
        if opt.t_cfg:
            raise OptionError('--t_cfg needs --t_weights (the teacher to distill from)')
        return None
    if opt.kd_weight <= 0 or opt.kd_T <= 0:
        raise OptionError(f'--kd-weight and --kd-T must be > 0, got {opt.kd_weight} and '
                          f'{opt.kd_T}')
    teacher = load_model(opt.t_weights, opt.t_cfg or None)
    return DistillHook(opt.KDstr, teacher, opt.kd_weight, opt.kd_T, opt.kd_feature)
