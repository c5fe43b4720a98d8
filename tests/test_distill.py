"""Distillation: each loss vanishes when the student is the teacher, matches hand-computed values,
sends gradients to the student and adapters only, and runs inside train.py."""
import copy
import csv
import math

import pytest
import torch

import train
from distill.bounded import bounded_losses
from distill.common import class_kl
from distill.feature import feature_loss, imitation_mask, make_adapters
from distill.hook import DistillHook, check_compatible
from distill.imitation import imitation_losses
from distill.output import output_losses
from models import Darknet
from models.weights import WeightsError, save_checkpoint
from prune.masks import channel_plan
from prune.surgery import prune_model
from tests.conftest import ROOT, _built, cfg_path
from utils.errors import OptionError
from utils.loss import YoloLoss

HYP = {'anchor_t': 4.0}


def batch(n=2, size=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    imgs = torch.rand(n, 3, size, size, generator=g)
    targets = torch.tensor([[0, 1, 0.5, 0.5, 0.3, 0.25], [1, 4, 0.3, 0.6, 0.2, 0.2],
                            [1, 2, 0.7, 0.3, 0.15, 0.3]])
    return imgs, targets


def raw_heads(model, imgs):
    model.train()
    return model(imgs)


def matches(model, preds, targets, size):
    heads = [model.module_list[j] for j in model.yolo_layers]
    assigner = YoloLoss(model, HYP)
    return heads, [assigner.assign(h, p, targets, (size, size)) for h, p in zip(heads, preds)]


def test_every_loss_is_zero_when_student_is_teacher():
    model = copy.deepcopy(_built('yolov3-mini'))
    imgs, targets = batch()
    preds = raw_heads(model, imgs)
    teacher = [p.detach().clone() for p in preds]
    heads, m = matches(model, preds, targets, 96)
    assert sum(len(x[0][0]) for x in m) > 0  # there are positives to compare
    for losses in (output_losses(preds, teacher, heads), bounded_losses(preds, teacher, heads, m),
                   imitation_losses(preds, teacher, heads, m),
                   output_losses(preds, teacher, heads, boxes=True)):
        for name, value in losses.items():
            assert abs(value.item()) < 1e-5, name
    feats = [torch.randn(2, 8, 4, 4)]
    assert feature_loss(feats, feats, make_adapters([8], [8])).item() == 0


def test_class_kl_by_hand():
    s, t = torch.tensor([0.0, math.log(3.0)]), torch.tensor([0.0, 0.0])
    # teacher (0.5, 0.5), student (0.25, 0.75): KL = 0.5 ln(0.5/0.25) + 0.5 ln(0.5/0.75)
    want = 0.5 * math.log(2) + 0.5 * math.log(2 / 3)
    assert class_kl(s, t, 1.0).item() == pytest.approx(want, abs=1e-6)
    # at T = 2 the logits halve and the result is scaled by T^2
    s2 = torch.tensor([0.0, math.log(3.0) / 2])
    want2 = 4 * (0.5 * math.log(0.5 / (1 / (1 + 3 ** 0.5))) + 0.5 * math.log(
        0.5 / (3 ** 0.5 / (1 + 3 ** 0.5))))
    assert class_kl(s, t, 2.0).item() == pytest.approx(want2, abs=1e-6)
    assert class_kl(s2, t, 1.0).item() == pytest.approx(want2 / 4, abs=1e-6)


class Head:
    new_coords, scale_x_y, nc = 0, 1.0, 2


def test_output_losses_by_hand():
    # one cell, one anchor: [x, y, w, h, obj, cls0, cls1]
    s = torch.tensor([0, 0, 0, 0, 0.0, 0.0, math.log(3.0)]).view(1, 1, 1, 1, 7)
    t = torch.tensor([0, 0, 0, 0, math.log(3.0), 0.0, 0.0]).view(1, 1, 1, 1, 7)
    out = output_losses([s], [t], [Head()], temperature=1.0)
    p = 0.75  # teacher objectness; the student says 0.5
    assert out['kd_obj'].item() == pytest.approx(p * math.log(p / 0.5) + (1 - p) * math.log(
        (1 - p) / 0.5), abs=1e-6)
    assert out['kd_cls'].item() == pytest.approx(0.5 * math.log(2) + 0.5 * math.log(2 / 3),
                                                 abs=1e-6)
    assert 'kd_box' not in out


def test_objectness_scaled_boxes_by_hand():
    # two anchors: the teacher sees an object (0.75) at the first, hardly one (0.25) at the second
    s = torch.tensor([[0, 0, 1.0, 0, 0, 0, 0], [0, 0, 0, 0.0, 0, 0, 0]]).view(1, 2, 1, 1, 7)
    t = torch.tensor([[0, 0, 0, 0.5, math.log(3.0), 0, 0],
                      [0, 0, 2.0, 0, -math.log(3.0), 0, 0]]).view(1, 2, 1, 1, 7)
    out = output_losses([s], [t], [Head()], temperature=1.0, boxes=True)
    # log-wh distances: 1 + 0.25 at the first anchor, 4 at the second; weights 0.75 and 0.25
    assert out['kd_box'].item() == pytest.approx(0.75 * 1.25 + 0.25 * 4.0, abs=1e-6)
    assert out['kd_obj'].item() == pytest.approx(
        output_losses([s], [t], [Head()], temperature=1.0)['kd_obj'].item())


def _positive(values):
    return torch.tensor(values, dtype=torch.float32).view(1, 1, 1, 1, 7)


def test_bounded_pays_only_where_the_student_is_worse():
    # truth: centre (0.5, 0.5) of the cell, size = anchor, class 1
    match = [((torch.tensor([0]), torch.tensor([0]), torch.tensor([0]), torch.tensor([0])),
              torch.tensor([[0.5, 0.5, 2.0, 2.0]]), torch.tensor([[2.0, 2.0]]),
              torch.tensor([1]))]
    good = _positive([0, 0, 0, 0, 0, -9, 9])    # sigmoid(0) = 0.5: exact box, right class
    bad = _positive([2, 0, 0.5, 0, 0, 9, -9])   # off box, wrong class
    worse = bounded_losses([bad], [good], [Head()], match)
    sx = 1 / (1 + math.exp(-2)) - 0.5
    assert worse['kd_box'].item() == pytest.approx(sx ** 2 + 0.25, abs=1e-5)
    assert worse['kd_cls'].item() == pytest.approx(2 * (1 / (1 + math.exp(-9))) ** 2, abs=1e-4)
    better = bounded_losses([good], [bad], [Head()], match)
    assert better['kd_box'].item() == 0 and better['kd_cls'].item() == 0


def test_imitation_by_hand():
    match = [((torch.tensor([0]), torch.tensor([0]), torch.tensor([0]), torch.tensor([0])),
              torch.tensor([[0.5, 0.5, 2.0, 2.0]]), torch.tensor([[2.0, 2.0]]),
              torch.tensor([1]))]
    s, t = _positive([0, 0, 1.0, 0, 0, 0, 0]), _positive([0, 0, 0.0, 0.5, 0, 0, 0])
    out = imitation_losses([s], [t], [Head()], match)
    assert out['kd_box'].item() == pytest.approx(1.0 + 0.25)
    assert out['kd_cls'].item() == pytest.approx(0.0, abs=1e-7)


def pruned_student():
    teacher = copy.deepcopy(_built('yolov3-mini'))
    return prune_model(teacher, channel_plan(teacher, 1, 0.5, clamp=True)), teacher


@pytest.mark.parametrize('strategy', [1, 2, 3, 4, 5, 6])
def test_gradients_reach_student_and_adapters_never_the_teacher(strategy):
    student, teacher = pruned_student()
    hook = DistillHook(strategy, teacher)
    hook.hyp = train.load_hyp({})
    student = hook.on_model(student)
    adapters = hook.parameters('cpu')
    assert bool(adapters) == (strategy in (4, 5))  # the student's head inputs are narrower
    imgs, targets = batch()
    losses = hook.extra_loss(student, imgs, raw_heads(student, imgs), targets)
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())
    assert all(p.grad is not None for p in adapters)
    assert ('kd_feat' in losses) == (strategy in (4, 5))
    assert ('kd_box' in losses) == (strategy != 1)


def test_fine_grained_mask_covers_the_cells_around_the_object():
    model = _built('yolov3-mini')
    head = model.module_list[model.yolo_layers[0]]  # the coarsest: 10 x 10 cells on 320 px
    box = torch.tensor([[0, 0, 0.5, 0.5, 0.3, 0.3]])  # centre of the image, 96 px
    mask = imitation_mask(head, (10, 10), 1, box, (320, 320))[0]
    assert mask[5, 5] or mask[4, 4]  # the object's centre
    rows, cols = mask.nonzero(as_tuple=True)
    assert rows.min() >= 2 and rows.max() <= 7 and cols.min() >= 2 and cols.max() <= 7
    assert 0 < mask.sum() <= 16
    two = torch.cat((box, torch.tensor([[0, 1, 0.1, 0.1, 0.1, 0.1]])))
    both = imitation_mask(head, (10, 10), 1, two, (320, 320))[0]
    assert both[0, 0] and not mask[0, 0]  # each object adds its own neighbourhood


def test_incompatible_teacher_is_refused():
    other = Darknet(cfg_path('yolov3-tiny'))  # 80 classes
    with pytest.raises(WeightsError, match='classes'):
        check_compatible(_built('yolov3-mini'), other)


def test_train_py_distills_with_sparsity(tiny_data, tmp_path):
    student, teacher = pruned_student()
    t_path, s_path, s_cfg = tmp_path / 't.pt', tmp_path / 's.pt', tmp_path / 's.cfg'
    save_checkpoint({'cfg': teacher.cfg_text, 'model': teacher.state_dict()}, t_path)
    save_checkpoint({'cfg': student.cfg_text, 'model': student.state_dict()}, s_path)
    s_cfg.write_text(student.cfg_text)
    train.run(cfg=str(s_cfg), weights=str(s_path), data=str(tiny_data), epochs=2,
              batch_size=8, img_size=[128], workers=0, notest=True, project=str(tmp_path),
              t_weights=str(t_path), KDstr=5, sr=True, s=0.001)
    with open(tmp_path / 'exp' / 'results.csv') as f:
        rows = list(csv.DictReader(f))
    assert {'kd_box', 'kd_cls', 'kd_feat', 'bn_small'} <= set(rows[0])
    assert all(float(r['kd_feat']) > 0 for r in rows)
    from models.weights import load_checkpoint, load_model
    ckpt = load_checkpoint(tmp_path / 'exp' / 'weights' / 'last.pt')
    assert ckpt['hooks']['distill']['adapters']  # kept for --resume
    assert not any(k.startswith('kd') or 'adapter' in k for k in ckpt['model'])
    load_model(tmp_path / 'exp' / 'weights' / 'last.pt')  # the student alone, exportable


def test_kd_signal_reads_a_model_against_the_labels(tiny_data):
    from bench.experiments.kd_signal import KEYS, signal
    from utils.datasets import create_dataloader, parse_data_cfg
    data = parse_data_cfg(tiny_data)
    loader, _ = create_dataloader(data['valid'], 6, 128, 4, workers=0)
    torch.manual_seed(0)
    model = Darknet(cfg_path('yolov3-mini')).eval()
    first, again = signal(model, loader, 3.0), signal(model, loader, 3.0)
    assert first == again and set(first) == set(KEYS)
    assert all(0 <= v <= 1 for v in first.values())
    assert first['iou'] > 0 and first['obj_pos'] > 0  # positive cells were found and read


def test_kd_alignment_bench_measures_the_gradients_it_names():
    from bench.experiments import kd_alignment
    from train import load_hyp
    from utils.loss import scaled_gains
    teacher = copy.deepcopy(_built('yolov3-mini')).eval()
    hyp = scaled_gains(load_hyp({}), 3, teacher.nc, 96)
    batches = [batch(seed=0), batch(seed=1)]
    same = kd_alignment.alignment(copy.deepcopy(teacher), teacher, batches, [1], hyp, 3.0)
    assert same[1]['norm_ratio'] < 1e-6  # a student that is the teacher gets no KD gradient
    student = copy.deepcopy(teacher)
    with torch.no_grad():
        for p in student.parameters():
            p.add_(0.05 * torch.randn_like(p))
    other = kd_alignment.alignment(student, teacher, [batches[0]] * 2, [1, 3], hyp, 3.0)
    assert other[1]['norm_ratio'] > 0 and -1 <= other[3]['cos'] <= 1
    assert other['labels']['cos'] == pytest.approx(1.0, abs=1e-5)  # the same batch twice


def test_qat_from_a_teacher_on_photos_without_labels(tiny_data, tmp_path):
    """--teacher-only: the photos' labels (there are none here) never enter the loss; QAT of
    the shipped model distilled from itself in float."""
    import shutil
    photos = tmp_path / 'photos'  # no labels/ beside them: unlabelled site photos
    shutil.copytree(tiny_data.parent / 'shapes' / 'images' / 'train', photos)
    weights = str(ROOT / 'weights' / 'yolov3-mini.pt')
    data = tmp_path / 'names.data'  # class names only: no train= and no valid=
    data.write_text(f'classes=6\nnames={ROOT / "data" / "shapes.names"}\n')
    train.run(weights=weights, data=str(data), images=[str(photos)], epochs=1, batch_size=8,
              img_size=[128], workers=0, project=str(tmp_path), t_weights=weights, KDstr=6,
              teacher_only=True, quantized=3, float_heads=True)
    with open(tmp_path / 'exp' / 'results.csv') as f:
        rows = list(csv.DictReader(f))
    assert {'kd_box', 'kd_cls', 'kd_obj'} <= set(rows[0])
    assert not {'box', 'obj', 'cls'} & set(rows[0])  # no label loss was computed
    from quantize.loader import load_model
    model = load_model(tmp_path / 'exp' / 'weights' / 'last.pt')
    assert model.quant_config['float_heads'] and model.quant_config['mode'] == 3
    with pytest.raises(OptionError, match='--teacher-only'):
        train.run(data=str(data), images=[str(photos)], teacher_only=True)
