"""bench/peers/compare.py's comparisons are fair by construction: the Torch-Pruning result
carried into a cfg computes what Torch-Pruning's module computes, its equal-BFLOPs search lands
at the target, its regularizer acts inside train.py's loop, and every PTQ method quantizes the same
graph from the same images."""
import copy

import onnx
import pytest
import torch
from torch import nn

from tests.conftest import ROOT, randomize_bn

tp = pytest.importorskip('torch_pruning', reason='torch-pruning is a dev dependency')

from bench.peers import peer_prune, peer_ptq  # noqa: E402 (needs torch_pruning)
from models import Darknet  # noqa: E402

SIZE = 96


def mini():
    torch.manual_seed(0)
    return randomize_bn(Darknet(ROOT / 'cfg' / 'yolov3-mini.cfg')).eval()


@pytest.mark.parametrize('kind', peer_prune.KINDS)
def test_carried_cfg_computes_what_torch_pruning_left(kind):
    model = mini()
    peer_prune.pruner(model, kind, 0.4, SIZE).step()
    net = peer_prune.carried(model).eval()
    x = torch.rand(2, 3, SIZE, SIZE)
    with torch.no_grad():
        for a, b in zip(model.heads(x), net.heads(x)):
            assert torch.equal(a, b)
    convs = [m.conv.out_channels for m in net.module_list if hasattr(m, 'conv')]
    assert convs == [m.conv.out_channels for m in model.module_list if hasattr(m, 'conv')]
    assert net.info(SIZE)['bflops'] < 0.8 * mini().info(SIZE)['bflops']
    for j in net.yolo_layers:  # the head convs keep anchors x (5 + classes)
        assert net.module_list[j - 1].conv.out_channels == 3 * (5 + net.nc)


def test_equal_bflops_search_lands_on_the_target():
    model = mini()
    full = model.info(SIZE)['bflops']
    net, ratio = peer_prune.pruned_to(model, 'bnscale', 0.5, SIZE, steps=8)
    share = net.info(SIZE)['bflops'] / full
    assert 0.45 < share <= 0.5 and 0 < ratio < 1
    assert model.info(SIZE)['bflops'] == full  # the model itself is left whole


def test_regularizer_pushes_bn_scales_and_keeps_training_mode():
    model = mini().train()
    hook = peer_prune.RegularizerHook('bnscale', 0.01, SIZE)
    model.zero_grad()
    sum(h.sum() for h in model.heads(torch.rand(1, 3, SIZE, SIZE))).backward()
    bn = next(m for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    before = bn.weight.grad.clone()
    hook.after_backward(model, 0)
    assert model.training
    assert torch.allclose(bn.weight.grad - before, 0.01 * torch.sign(bn.weight.data), atol=1e-5)


def test_regularizer_hook_is_built_from_train_options():
    from train import TrainOptions
    from utils.hooks import build_hooks

    opt = TrainOptions(extra={'torch_pruning': {'kind': 'groupnorm', 'reg': 1e-4,
                                                'img_size': SIZE}})
    hooks = build_hooks(opt)  # the built-in ones too, none of which these options switch on
    assert len(hooks) == 1 and isinstance(hooks[0], peer_prune.RegularizerHook)
    assert hooks[0].kind == 'groupnorm'
    assert not build_hooks(opt.replace(extra={}))


def test_ptq_methods_quantize_one_graph_from_the_same_images(tmp_path, tiny_data):
    from types import SimpleNamespace

    from utils.datasets import parse_data_cfg
    data = tiny_data
    opt = SimpleNamespace(calib=4, img_size=64)
    graphs, notes = peer_ptq.ptq_graphs(copy.deepcopy(mini()), parse_data_cfg(data), opt,
                                        tmp_path)
    labels = [label for label, _ in graphs]
    assert labels[0].startswith('float') and len([x for x in labels if 'toolkit' in x]) == 4
    assert len([x for x in labels if 'quantize_static' in x]) == 5
    for label, path in graphs:
        ops = {n.op_type for n in onnx.load(str(path)).graph.node}
        assert ('QuantizeLinear' in ops) == (not label.startswith('float')), label
    assert all('pip install' in n for n in notes)


def test_a_missing_peer_is_one_note(monkeypatch):
    import builtins
    real = builtins.__import__

    def no_nncf(name, *a, **kw):
        if name == 'nncf':
            raise ImportError(name)
        return real(name, *a, **kw)
    monkeypatch.setattr(builtins, '__import__', no_nncf)
    notes = peer_ptq.peers_available()
    assert notes['onnxruntime'] is None
    assert notes['nncf'].startswith('nncf rows left out: pip install nncf')
