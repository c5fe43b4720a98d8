"""Networks that detect and segment at once, or segment alone: masks travel with the pixels,
the metrics count what they should, and training, evaluation, drawing, export, quantization and
distillation treat them like any detector."""
import json

import cv2
import numpy as np
import onnxruntime as ort
import pytest
import torch
from sklearn.metrics import jaccard_score

import detect
import export
import test as evaluation
import train
from quantize import graphs
from models.deploy_head import DeployHead
from data.drawn import generate
from distill.hook import DistillHook
from distill.segment import segmentation_kl
from models import Darknet
from models.weights import load_darknet_weights, save_checkpoint
from quantize.calibrate import calibrate
from quantize.config import QuantConfig
from quantize.loader import load_model
from quantize.qat import quantize_model
from quantize.qdq import QDQError, qdq_model
from tests.conftest import ROOT, cfg_path, randomize_bn
from utils.augment import (IGNORE, flip, flip_mask, letterbox, letterbox_mask, mosaic, warp,
                           warp_mask)
from utils.datasets import YoloDataset, load_items
from utils.loss import segmentation_loss
from utils.metrics import SegmentationStats

SIZE = 128


def small(cfg, size=SIZE):
    """A shipped cfg at another input size (the [softmax] covers H*W of that size)."""
    text = cfg_path(cfg).read_text()
    text = text.replace('width=320', f'width={size}').replace('height=320', f'height={size}')
    pixels = (size // 4) ** 2
    return text.replace('groups=6400', f'groups={pixels}').replace('stride=6400',
                                                                   f'stride={pixels}')


@pytest.fixture(scope='module')
def seg_data(tmp_path_factory):
    root = tmp_path_factory.mktemp('seg')
    generate(root / 'shapes', n_train=24, n_val=8, img_size=SIZE, verbose=False)
    data = root / 'seg.data'
    data.write_text(f'classes=6\ntrain=shapes/train.txt\nvalid=shapes/val.txt\n'
                    f'names={ROOT / "data" / "shapes.names"}\nseg_classes=7\n'
                    f'seg_names={ROOT / "data" / "shapes-seg.names"}\n')
    return data


# ---- data: masks follow the pixels ----

def drawn_square(h, w, box, cls=3):
    img = np.zeros((h, w, 3), np.uint8)
    mask = np.zeros((h, w), np.uint8)
    x1, y1, x2, y2 = box
    img[y1:y2, x1:x2] = (0, 0, 255)
    mask[y1:y2, x1:x2] = cls
    return img, mask, np.array([[cls, x1, y1, x2, y2]], float)


def coincide(img, mask, boxes, cls=3):
    """The red pixels, the mask's class pixels and the box agree (within a pixel's rounding)."""
    red = (img[..., 2] > 128) & (img[..., 1] < 100)
    ys, xs = np.nonzero(mask == cls)
    assert red.any() and len(ys)
    agreement = (red & (mask == cls)).sum() / max((red | (mask == cls)).sum(), 1)
    assert agreement > 0.9
    box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    assert np.abs(box - boxes[0, 1:]).max() <= 2


def test_every_augmentation_moves_image_box_and_mask_together():
    img, mask, boxes = drawn_square(96, 128, (30, 20, 70, 60))
    out, r, pad = letterbox(img, 160)
    coincide(out, letterbox_mask(mask, r, pad, out.shape[:2]),
             np.hstack([boxes[:, :1], boxes[:, 1:] * r + [*pad, *pad]]))
    for horizontal in (True, False):
        f_img, f_boxes = flip(img, boxes, horizontal)
        coincide(f_img, flip_mask(mask, horizontal), f_boxes)
    from utils.augment import affine_matrix
    m = affine_matrix(img.shape[:2], (120, 120), degrees=0, translate=0.1, scale=0.2,
                      rng=np.random.default_rng(1))
    w_img, w_boxes = warp(img, boxes, m, (120, 120))
    coincide(w_img, warp_mask(mask, m, (120, 120)), w_boxes)
    rng = np.random.default_rng(0)
    canvas, merged, m_canvas = mosaic([img] * 4, [boxes] * 4, 128, rng, [mask] * 4)
    assert (m_canvas == IGNORE).any()  # uncovered canvas is not scored
    for k in range(len(merged)):
        x1, y1, x2, y2 = merged[k, 1:].astype(int)
        assert (m_canvas[y1:y2, x1:x2] == 3).mean() > 0.95


def test_dataset_masks_match_their_boxes_after_augmentation(seg_data):
    ds = YoloDataset(seg_data.parent / 'shapes' / 'train.txt', 6, SIZE, augment=True, seed=0,
                     seg_nc=7)
    for i in range(8):
        img, labels, _, _, mask = ds[i]
        assert mask.shape == img.shape[1:] and mask.dtype == torch.uint8
        for cls, cx, cy, w, h in labels[:, 1:].tolist():
            x1, y1 = int((cx - w / 2) * SIZE), int((cy - h / 2) * SIZE)
            x2, y2 = int((cx + w / 2) * SIZE) + 1, int((cy + h / 2) * SIZE) + 1
            inside = mask[max(y1, 0):y2, max(x1, 0):x2]
            assert (inside == int(cls) + 1).any()  # the object is in its box


def test_bad_masks_are_skipped_with_one_warning_each(seg_data, tmp_path):
    import shutil
    root = tmp_path / 'bad'
    shutil.copytree(seg_data.parent / 'shapes', root)
    masks = sorted((root / 'masks' / 'val').iterdir())
    cv2.imwrite(str(masks[0]), np.zeros((10, 10), np.uint8))        # wrong size
    cv2.imwrite(str(masks[1]), np.full((SIZE, SIZE), 9, np.uint8))  # class out of range
    masks[2].write_bytes(b'not a png')                               # unreadable
    masks[3].unlink()                                                # missing
    items, summary = load_items(root / 'val.txt', 6, seg_nc=7)
    assert summary['skipped'] == 4 and len(items) == 4
    reasons = ' '.join(summary['skipped_files'])
    for m in masks[:4]:
        assert m.stem in reasons


# ---- metrics ----

def brute_force_iou(pred, truth, nc, ignore=255):
    inter, union = np.zeros(nc), np.zeros(nc)
    for p, t in zip(pred.ravel(), truth.ravel()):
        if t == ignore:
            continue
        for c in range(nc):
            inter[c] += (p == c) and (t == c)
            union[c] += c in (p, t)
    return np.where(union > 0, inter / np.maximum(union, 1), np.nan)


def test_iou_from_one_bincount_equals_a_pixel_loop():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 4, (2, 12, 10))
    truth[0, :2] = 255
    pred = np.where(rng.random(truth.shape) < 0.6, truth % 4, rng.integers(0, 4, truth.shape))
    stats = SegmentationStats(5)
    stats.update(torch.from_numpy(pred), torch.from_numpy(truth))
    res = stats.compute()
    want = brute_force_iou(pred, truth, 5)
    assert np.allclose(res['iou'][:4], want[:4]) and np.isnan(res['iou'][4])  # class 4 unseen
    assert res['miou'] == pytest.approx(np.nanmean(want))
    valid = truth != 255
    assert res['pixel_acc'] == pytest.approx((pred[valid] == truth[valid]).mean())


def test_iou_agrees_with_scikit_learn():
    rng = np.random.default_rng(1)
    truth, pred = rng.integers(0, 6, 5000), rng.integers(0, 6, 5000)
    stats = SegmentationStats(6)
    stats.update(torch.from_numpy(pred), torch.from_numpy(truth))
    theirs = jaccard_score(truth, pred, average=None, labels=range(6))
    assert np.allclose(stats.compute()['iou'], theirs)


@pytest.mark.parametrize('kind', ['softmax', 'logistic'])
def test_the_class_map_is_the_argmax_of_the_probabilities(kind):
    cfg = small('yolov3-mini-seg').replace('[softmax]', f'[{kind}]')
    model = Darknet(cfg).eval()
    with torch.no_grad():
        _, heads = model(torch.rand(2, 3, SIZE, SIZE))
        probs = model.segment(heads, (SIZE, SIZE))
        assert torch.equal(model.segment_classes(heads, (SIZE, SIZE)), probs.argmax(1))


def test_segmentation_loss_skips_ignored_pixels():
    logits = torch.randn(2, 3, 4, 4)
    masks = torch.randint(0, 3, (2, 8, 8), dtype=torch.uint8)
    full = segmentation_loss(logits, masks)
    masks[:, :4] = 255
    part = segmentation_loss(logits, masks)
    up = torch.nn.functional.interpolate(logits, size=(8, 8), mode='bilinear',
                                         align_corners=False)
    want = torch.nn.functional.cross_entropy(up[:, :, 4:], masks[:, 4:].long())
    assert part == pytest.approx(want.item(), abs=1e-6) and part != pytest.approx(full.item())


# ---- training, evaluation, drawing ----

@pytest.fixture(scope='module')
def multitask_run(seg_data, tmp_path_factory):
    out = tmp_path_factory.mktemp('mt')
    cfg = out / 'mt.cfg'
    cfg.write_text(small('yolov3-mini-multitask'))
    m = train.run(cfg=str(cfg), data=str(seg_data), weights=str(ROOT / 'weights' /
                  'yolov3-mini.pt'), epochs=2, batch_size=8, workers=0, project=str(out),
                  hyp={'nbs': 8, 'warmup_epochs': 0})
    return cfg, out / 'exp', m


def test_training_a_multitask_network_logs_both_tasks(multitask_run):
    _, run, metrics = multitask_run
    header = (run / 'results.csv').read_text().splitlines()[0].split(',')
    assert {'box', 'obj', 'cls', 'seg', 'map50', 'miou', 'pixel_acc'} <= set(header)
    assert 0 < metrics['miou'] <= 1 and metrics['map50'] > 0.05  # starts from yolov3-mini.pt
    assert len(metrics['per_class_iou']) == 7


def test_test_py_reports_both_tasks_and_a_segment_only_network_has_no_map(multitask_run,
                                                                         seg_data, tmp_path):
    _, run, _ = multitask_run
    m = evaluation.run(data=str(seg_data), weights=str(run / 'weights' / 'last.pt'),
                       img_size=SIZE, workers=0, project=str(tmp_path), name='mt')
    saved = json.loads((tmp_path / 'mt' / 'metrics.json').read_text())
    assert {'map50', 'miou', 'per_class_iou', 'pixel_acc', 'fw_iou'} <= set(saved)
    assert saved['miou'] == pytest.approx(m['miou'])
    seg_only = Darknet(small('yolov3-mini-seg'))
    save_checkpoint({'cfg': seg_only.cfg_text, 'model': seg_only.state_dict()},
                    tmp_path / 'seg.pt')
    s = evaluation.run(data=str(seg_data), weights=str(tmp_path / 'seg.pt'), img_size=SIZE,
                       workers=0, project=str(tmp_path), name='seg')
    assert 'map50' not in s and 'miou' in s


@pytest.mark.parametrize('extra', [{'sr': True, 'prune': 1}, {'quantized': 3},
                                   {'KDstr': 4, 'teacher': True}])
def test_a_segment_only_network_trains_with_the_same_flags(multitask_run, seg_data, tmp_path,
                                                           extra):
    mt_cfg, run, _ = multitask_run
    if extra.pop('teacher', False):  # the multi-task network teaches a segmentation-only one
        extra.update(t_cfg=str(mt_cfg), t_weights=str(run / 'weights' / 'last.pt'))
    cfg = tmp_path / 'seg.cfg'
    cfg.write_text(small('yolov3-mini-seg'))
    m = train.run(cfg=str(cfg), data=str(seg_data), epochs=1, batch_size=8, workers=0,
                  project=str(tmp_path), hyp={'nbs': 8, 'warmup_epochs': 0}, **extra)
    header = (tmp_path / 'exp' / 'results.csv').read_text().splitlines()[0].split(',')
    assert 'map50' not in m and 0 <= m['miou'] <= 1 and 'seg' in header
    assert ('kd_seg' in header) == ('t_cfg' in extra)


def test_detect_draws_the_mask_and_saves_class_maps(multitask_run, seg_data):
    _, run, _ = multitask_run
    save_dir, _ = detect.run(source=str(seg_data.parent / 'shapes' / 'images' / 'val'),
                             weights=str(run / 'weights' / 'last.pt'), img_size=SIZE,
                             save_masks=True, project=str(run.parent), name='det')
    maps = sorted((save_dir / 'masks').glob('*.png'))
    assert len(maps) == 8
    mask = cv2.imread(str(maps[0]), cv2.IMREAD_UNCHANGED)
    image = cv2.imread(str(seg_data.parent / 'shapes' / 'images' / 'val' / f'{maps[0].stem}.jpg'))
    assert mask.shape == image.shape[:2] and mask.max() < 7
    drawn = cv2.imread(str(save_dir / f'{maps[0].stem}.jpg'))
    assert not np.array_equal(drawn, image)


# ---- export, quantization, distillation ----

def test_onnx_export_of_both_heads_equals_torch(tmp_path):
    model = randomize_bn(Darknet(small('yolov3-mini-multitask'))).eval()
    path = graphs.export_onnx(model, tmp_path / 'mt', (SIZE, SIZE), dynamic=True)[0]
    sess = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    assert [o.name for o in sess.get_outputs()] == ['boxes', 'scores', 'seg']
    x = torch.rand(2, 3, SIZE, SIZE)
    boxes, scores, seg = sess.run(None, {'images': x.numpy()})
    with torch.no_grad():
        want = DeployHead(model)(x)
    for got, ref in zip((boxes, scores, seg), want):
        assert np.abs(got - ref.numpy()).max() < 1e-3


def test_segment_only_onnx_scores_the_checkpoints_miou(seg_data, tmp_path):
    model = randomize_bn(Darknet(small('yolov3-mini-seg'))).eval()
    save_checkpoint({'cfg': model.cfg_text, 'model': model.state_dict()}, tmp_path / 's.pt')
    path = export.run(weights=str(tmp_path / 's.pt'), img_size=[SIZE], project=str(tmp_path),
                      name='onnx')[0]
    kw = {'data': str(seg_data), 'img_size': SIZE, 'workers': 0, 'project': str(tmp_path),
          'plots': False, 'verbose': False}
    a = evaluation.run(weights=str(tmp_path / 's.pt'), name='torch', **kw)
    b = evaluation.run(weights=path, name='onnx', **kw)
    assert b['miou'] == pytest.approx(a['miou'], abs=1e-3)


def test_darknet_round_trip_of_a_multitask_network_is_exact(tmp_path):
    model = randomize_bn(Darknet(small('yolov3-mini-multitask'))).eval()
    save_checkpoint({'cfg': model.cfg_text, 'model': model.state_dict()}, tmp_path / 'm.pt')
    cfg, weights = export.run(weights=str(tmp_path / 'm.pt'), fmt='darknet',
                              project=str(tmp_path))
    again = Darknet(cfg).eval()
    load_darknet_weights(again, weights)
    x = torch.rand(1, 3, SIZE, SIZE)
    with torch.no_grad():
        (d1, h1), (d2, h2) = model(x), again(x)
    assert torch.equal(d1, d2) and all(torch.equal(a, b) for a, b in zip(h1, h2))


def test_int8_qdq_graph_of_a_multitask_network_runs_in_onnxruntime(tmp_path):
    model = quantize_model(randomize_bn(Darknet(small('yolov3-mini-multitask'))),
                           QuantConfig(mode=3))
    with torch.no_grad():
        calibrate(model, [torch.rand(2, 3, SIZE, SIZE)])
    path = graphs.export_onnx(model, tmp_path / 'q', (SIZE, SIZE), qdq='onnxruntime-u8')[0]
    sess = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    x = torch.rand(1, 3, SIZE, SIZE)
    seg = sess.run(None, {'images': x.numpy()})[2]
    with torch.no_grad():
        want = DeployHead(qdq_model(model, 'onnxruntime-u8'))(x)[2]
    assert want.std() > 0.01  # a calibrated graph, not one that rounds everything to zero
    agree = (seg.argmax(1) == want.numpy().argmax(1)).mean()
    assert agree > 0.95


def test_an_uncalibrated_model_has_no_int8_graph():
    model = quantize_model(Darknet(small('yolov3-mini-multitask')), QuantConfig(mode=3))
    with pytest.raises(QDQError, match='never saw data'):
        qdq_model(model, 'tensorrt')


def test_a_quantized_multitask_checkpoint_loads_back(tmp_path):
    model = quantize_model(Darknet(small('yolov3-mini-multitask')), QuantConfig(mode=3))
    save_checkpoint({'cfg': model.cfg_text, 'model': model.state_dict(),
                     'quant': model.quant_config}, tmp_path / 'q.pt')
    again = load_model(tmp_path / 'q.pt')
    assert again.seg_nc == 7 and again.quant_config['mode'] == 3


def test_segmentation_distillation_is_zero_for_itself_and_pulls_toward_the_teacher():
    t = torch.randn(2, 7, 8, 8)
    assert segmentation_kl(t, t, 3.0).item() == pytest.approx(0.0, abs=1e-6)
    s = torch.randn(2, 7, 4, 4, requires_grad=True)
    loss = segmentation_kl(s, t, 3.0)
    loss.backward()
    assert loss > 0 and s.grad.abs().sum() > 0
    teacher = Darknet(small('yolov3-mini-multitask')).eval()
    student = Darknet(small('yolov3-mini-multitask')).train()
    hook = DistillHook(1, teacher)
    hook.on_model(student)
    hook.hyp = {'box': 0.05, 'cls': 0.5, 'obj': 1.0, 'seg': 0.1}
    x = torch.rand(2, 3, SIZE, SIZE)
    terms = hook.extra_loss(student, x, student(x), torch.zeros((0, 6)))
    assert {'kd_cls', 'kd_obj', 'kd_seg'} == set(terms)
