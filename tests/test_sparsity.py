"""Sparse training: the L1 push reaches exactly the gammas the prune mode may remove."""
import csv

import pytest
import torch

import train
from models import Darknet
from prune.cost import cost_weights
from prune.deps import prunable_groups
from prune.sparsity import SparsityHook, residual_block_convs, sparse_convs
from tests.conftest import cfg_path


@pytest.mark.parametrize('mode', [0, 1, 2])
def test_hook_adds_sign_to_exactly_the_prunable_gammas(mode):
    model = Darknet(cfg_path('yolov3-mini'))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(-1, 1)
    hook = SparsityHook(0.01, mode)
    hook.on_model(model)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    hook.after_backward(model, epoch=0)
    chosen = set(sparse_convs(model, mode))
    assert chosen
    for i, m in enumerate(model.module_list):
        if hasattr(m, 'bn') and isinstance(m.bn, torch.nn.BatchNorm2d):
            zero = torch.zeros_like(m.bn.weight)
            expected = 0.01 * torch.sign(m.bn.weight) if i in chosen else zero
            assert torch.equal(m.bn.weight.grad, expected), i
            assert torch.equal(m.bn.bias.grad, torch.zeros_like(m.bn.bias))  # betas untouched


def test_modes_choose_nested_sets():
    model = Darknet(cfg_path('yolov3-mini'))
    assert set(sparse_convs(model, 0)) < set(sparse_convs(model, 1))
    assert residual_block_convs(model) == [2, 6, 9, 13, 16, 20]


def test_decay_schedule():
    hook = SparsityHook(0.01, 0, 'decay', epochs=10)
    assert hook.strength(6) == 0.01 and hook.strength(7) == pytest.approx(0.001)


def test_sparse_training_drives_prunable_gammas_down(tiny_data, tmp_path):
    # a strong push in a short run (SGD, as sparse training is usually done)
    common = dict(data=str(tiny_data), epochs=10, batch_size=8, img_size=[128],
                  hyp={'optimizer': 'sgd', 'nbs': 8, 'warmup_epochs': 0, 'lr0': 0.05,
                       'lrf': 0.01}, workers=0, notest=True)
    train.run(project=str(tmp_path / 'sr'), sr=True, s=1.0, prune=0, **common)
    train.run(project=str(tmp_path / 'plain'), **common)
    with open(tmp_path / 'sr' / 'exp' / 'results.csv') as f:
        rows = list(csv.DictReader(f))
    small = [float(r['bn_small']) for r in rows]
    assert small[-1] > small[0]  # the share of near-zero prunable gammas grows
    assert 0 < float(rows[-1]['bflops_small']) < 1
    assert (tmp_path / 'sr' / 'exp' / 'gamma_hist.png').stat().st_size > 0

    def gammas(run, convs):
        from models.weights import load_checkpoint
        state = load_checkpoint(tmp_path / run / 'exp' / 'weights' / 'last.pt')['model']
        return torch.cat([state[f'module_list.{i}.bn.weight'].abs() for i in convs])

    model = Darknet(cfg_path('yolov3-mini'))
    pruned, kept = sparse_convs(model, 0), [i for i in sparse_convs(model, 1)
                                            if i not in sparse_convs(model, 0)]
    assert gammas('sr', pruned).mean() < 0.5 * gammas('plain', pruned).mean()
    assert gammas('sr', kept).mean() > 0.8 * gammas('plain', kept).mean()  # others left alone


def test_flops_hook_weighs_each_push_by_channel_cost():
    model = Darknet(cfg_path('yolov3-mini')).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(-1, 1)
    hook = SparsityHook(0.01, 1, flops=True)
    hook.on_model(model)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    hook.after_backward(model, epoch=0)
    groups = prunable_groups(model, 1)
    for g, w in zip(groups, cost_weights(model, groups, 320)):
        for i in g.convs:
            bn = model.module_list[i].bn
            assert torch.allclose(bn.weight.grad, 0.01 * w * torch.sign(bn.weight)), i
    with pytest.raises(ValueError, match='--sr-flops'):
        SparsityHook(0.01, 2, flops=True)
