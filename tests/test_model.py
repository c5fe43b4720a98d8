import copy

import pytest
import torch
import torch.nn.functional as F

from models import Darknet, parse_cfg_text
from models.layers import MaxPool, YoloLayer
from tests.conftest import CFGS, cfg_path

DARKNET_BFLOPS = [('yolov3', 416, 65.879), ('yolov3-tiny', 416, 5.571), ('yolov4', 608, 128.459),
                  ('yolov4-tiny', 416, 6.910), ('yolov3-spp', 608, 141.531)]


@pytest.mark.parametrize('name,size,expected', DARKNET_BFLOPS)
def test_bflops_equal_darknet(built, name, size, expected):
    info = built(name).info(size)
    assert info['bflops'] == pytest.approx(expected, rel=5e-4)
    assert f"{info['bflops']:.3f}" == f'{expected:.3f}'  # what darknet prints


@pytest.mark.parametrize('name', CFGS)
def test_params_are_the_sum_of_tensors(built, name):
    model = built(name)
    info = model.info(64)
    assert info['params'] == sum(p.numel() for p in model.parameters())
    assert info['params'] == sum(layer['params'] for layer in info['layers'])


@pytest.mark.parametrize('name', CFGS)
def test_forward_backward_shapes(name):
    torch.manual_seed(0)
    model = Darknet(cfg_path(name)).train()
    x = torch.randn(2, 3, 64, 96)  # non-square: strides come from the maps, per axis
    heads = model(x)
    assert len(heads) == len(model.yolo_layers) + len(model.seg_layers)
    if model.seg_layers:
        seg = model.seg_logits(heads)
        assert seg.shape[:2] == (2, model.seg_nc) and 96 // seg.shape[3] == 64 // seg.shape[2]
    for j, p in zip(model.yolo_layers, model.det_heads(heads)):
        yolo = model.module_list[j]
        assert p.shape[0] == 2 and p.shape[1] == yolo.na and p.shape[4] == yolo.nc + 5
        assert 64 % p.shape[2] == 0 and 96 // p.shape[3] == 64 // p.shape[2]
        assert torch.isfinite(p).all()
    loss = sum(p.float().square().mean() for p in heads)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize('name', CFGS)
def test_summary_shapes_match_forward(built, name):
    """The analytic shapes of the summary are the shapes the network really produces."""
    model = built(name)
    seen = []
    hooks = [m.register_forward_hook(lambda m, i, o: seen.append(o)) for m in model.module_list]
    try:
        with torch.no_grad():
            model(torch.randn(1, 3, 96, 64))
    finally:
        for h in hooks:
            h.remove()
    info = model.info((96, 64))
    for layer, out, m in zip(info['layers'], seen, model.module_list):
        if isinstance(m, YoloLayer):
            continue  # its output is the reshaped head; the layer passes its input on
        assert list(out.shape[1:]) == layer['output'], layer


@pytest.mark.parametrize('name', CFGS)
def test_fuse_keeps_outputs(built, name):
    model = built(name)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)[1]
        fused = copy.deepcopy(model).fuse()
        out = fused(x)[1]
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    for a, b in zip(out, ref):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-5), (a - b).abs().max()


@pytest.mark.parametrize('name', CFGS)
def test_eval_output_is_decoded(built, name):
    model = built(name)
    with torch.no_grad():
        decoded, heads = model(torch.randn(2, 3, 64, 64))
    if model.seg_layers:
        probs = model.segment(heads, (64, 64))
        assert probs.shape == (2, model.seg_nc, 64, 64)
        assert torch.allclose(probs.sum(1), torch.ones(2, 64, 64), atol=1e-5)
    if not model.yolo_layers:
        assert decoded is None
        return
    heads = model.det_heads(heads)
    n = sum(p.shape[1] * p.shape[2] * p.shape[3] for p in heads)
    assert decoded.shape == (2, n, model.nc + 5)
    assert ((decoded[..., 4:] >= 0) & (decoded[..., 4:] <= 1)).all()
    assert (decoded[..., 2:4] > 0).all()


def _one_head(extra):
    text = ('[net]\nwidth=64\nheight=64\n[convolutional]\nfilters=7\nsize=1\nactivation=linear\n'
            f'[yolo]\nmask=0\nanchors=10,20\nclasses=2\nnum=1\n{extra}')
    return Darknet(parse_cfg_text(text)).eval()


def test_decode_by_hand():
    """xy = (sigmoid(t) * s - (s - 1)/2 + grid) * stride, wh = exp(t) * anchor."""
    model = _one_head('scale_x_y=1.2\n')
    t = torch.zeros(1, 7, 2, 4)
    t[0, :, 1, 3] = torch.tensor([0.5, -1.0, 0.3, -0.2, 0.0, 1.0, -1.0])
    out = model.module_list[1].decode(model.module_list[1](t), (16, 64))
    cell = out[0, 1 * 4 + 3]  # row 1, column 3
    sig = torch.sigmoid
    assert cell[0].item() == pytest.approx(((sig(torch.tensor(0.5)) * 1.2 - 0.1) + 3) * 16)
    assert cell[1].item() == pytest.approx(((sig(torch.tensor(-1.0)) * 1.2 - 0.1) + 1) * 8)
    assert cell[2].item() == pytest.approx(10 * torch.exp(torch.tensor(0.3)).item())
    assert cell[3].item() == pytest.approx(20 * torch.exp(torch.tensor(-0.2)).item())
    assert cell[4:].tolist() == pytest.approx(sig(torch.tensor([0.0, 1.0, -1.0])).tolist())


def test_decode_new_coords_by_hand():
    """new_coords=1 (scaled YOLOv4): inputs are already logistic; wh = 4 t^2 anchor."""
    model = _one_head('new_coords=1\nscale_x_y=2.0\n')
    t = torch.zeros(1, 7, 1, 1)
    t[0, :, 0, 0] = torch.tensor([0.25, 0.75, 0.5, 0.1, 0.9, 0.2, 0.3])
    cell = model.module_list[1].decode(model.module_list[1](t), (32, 32))[0, 0]
    assert cell.tolist() == pytest.approx([(0.5 - 0.5) * 32, (1.5 - 0.5) * 32, 4 * 0.25 * 10,
                                           4 * 0.01 * 20, 0.9, 0.2, 0.3])


def two_heads(new_coords):
    """Two [yolo] layers at strides 4 and 8, two anchors each, with the given new_coords."""
    yolo = '[yolo]\nmask={}\nanchors=5,7, 9,4, 12,15, 20,11\nclasses=3\nnum=4\nscale_x_y=1.1\n'
    text = ('[net]\nwidth=32\nheight=32\n[convolutional]\nfilters=4\nsize=3\nstride=4\n'
            'pad=1\nactivation=leaky\n[convolutional]\nfilters=16\nsize=1\nactivation=linear\n'
            f'{yolo.format("0,1")}new_coords={new_coords[0]}\n[route]\nlayers=-3\n'
            '[maxpool]\nsize=2\nstride=2\n[convolutional]\nfilters=16\nsize=1\n'
            f'activation=linear\n{yolo.format("2,3")}new_coords={new_coords[1]}\n')
    return Darknet(parse_cfg_text(text)).eval()


def per_head_decode(model, x):
    """The decoded output as each [yolo] layer decodes its own head."""
    heads = model.det_heads(model.heads(x))
    return torch.cat([model.module_list[j].decode(p, x.shape[-2:])
                      for j, p in zip(model.yolo_layers, heads)], 1)


@pytest.mark.parametrize('new_coords', [(0, 0), (1, 1), (0, 1)])
def test_forward_decodes_all_heads_at_once_as_each_head_does(new_coords):
    model = two_heads(new_coords)
    x = torch.rand(2, 3, 32, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        decoded, heads = model(x)
        want = per_head_decode(model, x)
    assert model.mixed_coords == (new_coords == (0, 1))
    assert decoded.shape == want.shape == (2, 2 * (8 * 16 + 4 * 8), 8)
    assert torch.allclose(decoded, want, rtol=1e-6, atol=1e-5)


def test_maxpool_darknet_padding():
    """size=2 stride=1 keeps the size, padding only right/bottom with -inf (max of real pixels)."""
    text = '[net]\nwidth=4\nheight=4\nchannels=1\n[maxpool]\nsize=2\nstride=1\n' \
           '[convolutional]\nfilters=6\nsize=1\nactivation=linear\n' \
           '[yolo]\nmask=0\nanchors=1,1\nclasses=1\nnum=1\n'
    model = Darknet(parse_cfg_text(text))
    x = -torch.arange(16.0).view(1, 1, 4, 4) - 1  # all negative: zero padding would win
    y = model.module_list[0](x)
    assert y.shape == x.shape
    assert y[0, 0, 0, 0] == -1 and y[0, 0, 3, 3] == -16 and y[0, 0, 0, 3] == -4


def test_weighted_shortcut_softmax():
    text = '[net]\nwidth=8\nheight=8\nchannels=2\n[convolutional]\nfilters=2\nsize=1\n' \
           'activation=linear\n[convolutional]\nfilters=2\nsize=1\nactivation=linear\n' \
           '[shortcut]\nfrom=-2\nweights_type=per_channel\nweights_normalization=softmax\n' \
           '[convolutional]\nfilters=6\nsize=1\nactivation=linear\n' \
           '[yolo]\nmask=0\nanchors=1,1\nclasses=1\nnum=1\n'
    model = Darknet(parse_cfg_text(text))
    sc = model.module_list[2]
    with torch.no_grad():
        sc.weights.copy_(torch.tensor([[0.0, 1.0], [1.0, 0.0]]))
    a, b = torch.randn(1, 2, 8, 8), torch.randn(1, 2, 8, 8)
    w = torch.tensor([[0.0, 1.0], [1.0, 0.0]]).softmax(0)
    expected = b * w[0].view(1, 2, 1, 1) + a * w[1].view(1, 2, 1, 1)
    assert torch.allclose(sc(b, [a]), expected)
    assert model.info(8)['layers'][2]['bflops'] == 2 * 2 * 8 * 8 / 1e9


def test_dilation_and_groups():
    text = '[net]\nwidth=16\nheight=16\nchannels=4\n' \
           '[convolutional]\nbatch_normalize=1\nfilters=8\nsize=3\npad=1\ndilation=2\ngroups=2\n' \
           'activation=mish\n[convolutional]\nfilters=6\nsize=1\nactivation=linear\n' \
           '[yolo]\nmask=0\nanchors=1,1\nclasses=1\nnum=1\n'
    model = Darknet(parse_cfg_text(text))
    conv = model.module_list[0].conv
    assert conv.dilation == (2, 2) and conv.groups == 2 and conv.padding == (2, 2)
    assert model.info(16)['layers'][0]['output'] == [8, 16, 16]
    assert model.info(16)['layers'][0]['bflops'] == 2 * (4 // 2) * 8 * 9 * 256 / 1e9


@pytest.mark.parametrize('size,stride,padding', [(2, 2, 1), (2, 1, 1), (3, 2, 2), (3, 1, 2),
                                                 (5, 1, 4), (2, 2, 0), (3, 2, 1)])
@pytest.mark.parametrize('hw', [(8, 8), (9, 7), (13, 13)])
def test_maxpool_pads_only_what_a_window_reaches(size, stride, padding, hw):
    """Skipping padding no window reaches gives darknet's pool (-inf padding) exactly, values
    and gradients."""
    pool = MaxPool(size, stride, padding)
    x = torch.randn(2, 3, *hw, generator=torch.Generator().manual_seed(0), requires_grad=True)
    ref = F.max_pool2d(F.pad(x, pool.pad, value=float('-inf')), size, stride)
    got = pool(x)
    assert got.shape == ref.shape == (2, 3, *pool.out_shape((3, *hw))[1:])
    assert torch.equal(got, ref)
    g = torch.randn(ref.shape, generator=torch.Generator().manual_seed(1))
    assert torch.equal(torch.autograd.grad(got, x, g)[0], torch.autograd.grad(ref, x, g)[0])


def test_every_block_the_dialect_accepts_has_a_builder():
    """The cfg dialect (models/dialect.py) and the module builders list the same block types:
    a type accepted but not built would fail at build time, one built but not accepted never."""
    from models.darknet import BUILDERS
    from models.dialect import BUILT
    assert set(BUILDERS) == set(BUILT) - {'net'}


@pytest.mark.parametrize('size,stride,padding', [(2, 1, 1), (3, 1, 2), (2, 2, 1), (3, 2, 2),
                                                 (5, 1, 4), (2, 1, 3)])
def test_maxpool_edge_padding_takes_the_maxima_of_real_pixels(size, stride, padding):
    """The pool repeats the edge where every window holds a real pixel (no infinities in an
    exported graph): the maxima are darknet's, those of -inf padding, on odd and even sizes."""
    pool = MaxPool(size, stride, padding)
    for h, w in ((13, 13), (12, 17), (7, 8)):
        x = torch.randn(2, 3, h, w)
        pad = pool._reached(h, w)
        want = F.max_pool2d(F.pad(x, pad, value=float('-inf')), size, stride)
        assert torch.equal(pool(x), want)
