import numpy as np
import pytest
import torch

from utils import nms as nms_module
from utils.boxes import box_iou, xywh2xyxy
from utils.nms import BLOCK, PAD_BUDGET, nms, non_max_suppression


def greedy_reference(boxes, scores, thr, classes=None):
    """Textbook greedy NMS, one box at a time."""
    iou = box_iou(boxes.numpy(), boxes.numpy())
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    keep = []
    for i in order:
        if all(iou[i, k] <= thr or (classes is not None and classes[i] != classes[k])
               for k in keep):
            keep.append(i)
    return keep


def random_boxes(n, seed, clustered=True):
    g = torch.Generator().manual_seed(seed)
    centers = torch.rand(max(1, n // 20) if clustered else n, 2, generator=g) * 300
    pick = torch.randint(len(centers), (n,), generator=g)
    xy = centers[pick] + torch.randn(n, 2, generator=g) * 6
    wh = torch.rand(n, 2, generator=g) * 60 + 5
    boxes = torch.cat((xy - wh / 2, xy + wh / 2), 1)
    return boxes, torch.rand(n, generator=g), torch.randint(0, 4, (n,), generator=g)


@pytest.mark.parametrize('n,seed', [(0, 0), (1, 0), (7, 1), (300, 2), (BLOCK * 2 + 37, 3)])
@pytest.mark.parametrize('thr', [0.3, 0.6])
def test_nms_equals_greedy_reference(n, seed, thr):
    boxes, scores, _ = random_boxes(n, seed)
    got = nms(boxes, scores, thr).tolist()
    assert got == greedy_reference(boxes, scores.tolist(), thr)


def test_nms_max_keep_is_a_prefix():
    boxes, scores, _ = random_boxes(BLOCK * 3, 5)
    full = nms(boxes, scores, 0.5).tolist()
    assert len(full) > 40 and nms(boxes, scores, 0.5, max_keep=40).tolist() == full[:40]


def _prediction():
    """One image: two overlapping class-0 boxes, one class-1 box over them, one weak box."""
    rows = [[50, 50, 40, 40, 0.9, 0.9, 0.1], [52, 50, 40, 40, 0.8, 0.9, 0.1],
            [51, 51, 40, 40, 0.7, 0.1, 0.9], [200, 200, 20, 20, 0.01, 0.5, 0.5]]
    return torch.tensor([rows], dtype=torch.float32)


def test_non_max_suppression_options():
    pred = _prediction()
    det = non_max_suppression(pred, conf_thres=0.05, iou_thres=0.5, multi_label=False)[0]
    assert det[:, 5].tolist() == [0, 1]  # class-aware: the class-1 box survives its overlap
    assert det[0, 4].item() == pytest.approx(0.81)
    agnostic = non_max_suppression(pred, 0.05, 0.5, agnostic=True, multi_label=False)[0]
    assert agnostic[:, 5].tolist() == [0]
    only1 = non_max_suppression(pred, 0.05, 0.5, classes=[1], multi_label=False)[0]
    assert only1[:, 5].tolist() == [1]
    capped = non_max_suppression(pred, 0.001, 0.5, max_det=1)[0]
    assert len(capped) == 1
    multi = non_max_suppression(pred, 0.001, 0.5, multi_label=True)[0]
    # multi-label keeps the weak box under both classes and each strong box under the other class
    assert len(multi) > len(non_max_suppression(pred, 0.001, 0.5, multi_label=False)[0])
    xyxy = det[0, :4].tolist()
    assert xyxy == pytest.approx([30, 30, 70, 70])


def test_box_iou_numpy_and_torch_agree():
    boxes, _, _ = random_boxes(20, 9, clustered=False)
    assert np.allclose(box_iou(boxes, boxes).numpy(), box_iou(boxes.numpy(), boxes.numpy()),
                       atol=1e-6)


def test_box_iou_in_place_gives_the_same_bits_and_keeps_gradients():
    """Without gradients box_iou reuses its temporaries; the bits are those of the plain form,
    for batched inputs and strided views too, and a tensor that needs gradients still gets them."""
    boxes, _, _ = random_boxes(60, 4, clustered=True)
    batched = torch.stack((boxes[:30], boxes[30:]))
    for a, b in ((boxes, boxes[:7]), (batched, batched), (boxes.double(), boxes.double())):
        with torch.enable_grad():
            plain = box_iou(a.clone().requires_grad_(), b).detach()
        assert torch.equal(box_iou(a, b), plain)
    leaf = boxes[:5].clone().requires_grad_()
    box_iou(leaf, boxes[:9]).sum().backward()
    assert leaf.grad is not None and leaf.grad.abs().sum() > 0


def _random_prediction(batch, n, nc, seed):
    g = torch.Generator().manual_seed(seed)
    xy = (torch.rand(batch, n // 15 + 1, 2, generator=g) * 300).repeat_interleave(15, 1)[:, :n]
    xy = xy + torch.randn(batch, n, 2, generator=g) * 8
    wh = torch.rand(batch, n, 2, generator=g) * 50 + 4
    return torch.cat((xy, wh, torch.rand(batch, n, 1 + nc, generator=g)), 2)


def _per_image(pred, conf_thres, iou_thres, max_det, multi_label):
    """The definition: each image on its own, greedy NMS per class, best max_det."""
    out = []
    for x in pred:
        x = x[x[:, 4] > conf_thres]
        scores = x[:, 5:] * x[:, 4:5]
        if multi_label:
            i, j = (scores > conf_thres).nonzero(as_tuple=True)
            det = torch.cat((xywh2xyxy(x[i, :4]), scores[i, j, None], j[:, None].float()), 1)
        else:
            conf, j = scores.max(1, keepdim=True)
            det = torch.cat((xywh2xyxy(x[:, :4]), conf, j.float()), 1)[conf.view(-1) > conf_thres]
        keep = greedy_reference(det[:, :4], det[:, 4].tolist(), iou_thres, det[:, 5].tolist())
        out.append(det[keep[:max_det]])
    return out


@pytest.mark.parametrize('budget', [PAD_BUDGET, 60000, 30])  # one pad; many chunks; the fallback
@pytest.mark.parametrize('multi_label', [True, False])
@pytest.mark.parametrize('max_det', [40, 3])  # 3: the fallback stops a group early
def test_batched_nms_equals_each_image_on_its_own(budget, multi_label, max_det, monkeypatch):
    monkeypatch.setattr(nms_module, 'PAD_BUDGET', budget)
    kept = []  # what each group of the fallback kept: no more than an image can show

    def spy(*args):
        keep = nms(*args)
        kept.append(len(keep))
        return keep
    monkeypatch.setattr(nms_module, 'nms', spy)
    pred = _random_prediction(3, 200, 4, seed=11)
    pred[1, :, 4] = 0  # an image with nothing above the threshold
    got = non_max_suppression(pred, 0.05, 0.45, max_det=max_det, multi_label=multi_label)
    want = _per_image(pred, 0.05, 0.45, max_det, multi_label)
    assert bool(kept) == (budget == 30) and max(kept, default=0) <= max_det
    assert [len(d) for d in got] == [len(d) for d in want] and len(got[1]) == 0
    for a, b in zip(got, want):
        assert torch.equal(a, b)
