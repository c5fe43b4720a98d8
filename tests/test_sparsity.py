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


def _random_gammas(model):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(-1, 1)
    return model


@pytest.mark.parametrize('mode', [0, 1, 2])
def test_hook_adds_sign_to_exactly_the_prunable_gammas(mode):
    model = _random_gammas(Darknet(cfg_path('yolov3-mini')))
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
    model = _random_gammas(Darknet(cfg_path('yolov3-mini')).eval())
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


def _pushed_grads(model, hook, epoch):
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    hook.after_backward(model, epoch)
    return {i: model.module_list[i].bn.weight.grad.clone() for i in hook.convs}


def _aimed(cut_fraction=0.3, epochs=1):
    model = _random_gammas(Darknet(cfg_path('yolov3-mini')).eval())
    hook = SparsityHook(0.01, 1, epochs=epochs, target=cut_fraction)
    hook.on_model(model)
    hook.on_epoch_start(model, 0)
    return model, hook


def test_target_hook_pushes_exactly_what_the_slim_cut_removes():
    from prune.methods import METHODS
    from prune.aim import LAYER_KEEP
    from prune.cost import percent_for_bflops
    from prune.surgery import prune_model
    model, hook = _aimed(0.3)
    grads = _pushed_grads(model, hook, epoch=0)

    def select(m, p):
        return METHODS['slim'].plan(m, p, layer_keep=LAYER_KEEP, rank='layer')
    plan = select(model, percent_for_bflops(model, 0.3, 320, select))
    assert hook.aim.percent > 0
    for i, grad in grads.items():
        gamma, keep = model.module_list[i].bn.weight, plan.masks[i]
        assert torch.equal(hook.aim.cut[i], ~keep)
        assert keep.float().mean() >= LAYER_KEEP  # every layer keeps a quarter
        assert torch.equal(grad[keep], torch.zeros(int(keep.sum()))), i
        assert torch.equal(grad[~keep], 0.01 * torch.sign(gamma[~keep])), i
    full = model.info(320)['bflops']
    assert prune_model(model, plan).info(320)['bflops'] / full <= 0.3


def test_target_is_chosen_again_each_epoch():
    model, hook = _aimed(0.5, epochs=3)  # share 1/2 at epoch 0: the cut gammas are not yet 0
    before = {i: c.clone() for i, c in hook.aim.cut.items()}
    with torch.no_grad():  # the cut channels become the strongest ones
        for i in hook.convs:
            w = model.module_list[i].bn.weight
            w.copy_(torch.where(before[i], w.sign() * 5, w))
    hook.on_epoch_start(model, 1)
    assert any((before[i] & ~hook.aim.cut[i]).any() for i in hook.convs)


def test_target_drops_the_cut_channels_from_a_growing_share_of_images():
    model, hook = _aimed(0.4, epochs=6)  # all images through the kept network from epoch 3 on
    assert [hook.aim.drop_probability(e) for e in range(6)] == [0.25, 0.5, 0.75, 1, 1, 1]
    plain = Darknet(cfg_path('yolov3-mini'))  # no hooks: the reference
    plain.load_state_dict(model.state_dict())
    kept = Darknet(cfg_path('yolov3-mini'))
    kept.load_state_dict(model.state_dict())
    with torch.no_grad():
        for i, cut in hook.aim.cut.items():
            kept.module_list[i].bn.weight[cut] = 0  # what pruning leaves: beta alone
    x = torch.rand(2, 3, 64, 64)
    hook.aim.p = 1.0  # evaluation: the whole network, always
    torch.testing.assert_close(model.eval()(x)[0], plain.eval()(x)[0])
    model.train(), plain.train(), kept.train()
    for p, reference in ((0.0, plain), (1.0, kept)):
        hook.aim.p = p
        for a, b in zip(model(x), reference(x)):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(plain(x)[0], kept(x)[0], atol=1e-3)
    hook.aim.p = 0.5  # a coin per image
    model(torch.rand(64, 3, 32, 32))
    assert 16 < int(hook.aim.pruned.sum()) < 48


def test_target_holds_cut_gammas_at_zero_once_always_dropped():
    model, hook = _aimed(0.4, epochs=3)  # drop share 1/2, then 1 from epoch 1
    before = [g.detach().clone() for g in hook.gammas]
    hook.after_step(model, epoch=0)
    assert all(torch.equal(g, b) for g, b in zip(hook.gammas, before))  # share 1/2: untouched
    hook.on_epoch_start(model, 1)
    hook.after_step(model, epoch=1)
    for i, g, b in zip(hook.convs, hook.gammas, before):
        cut = hook.aim.cut[i]
        assert not g[cut].any() and torch.equal(g[~cut], b[~cut])


def test_settled_cut_skips_the_dropout_and_steps_the_same():
    model, hook = _aimed(0.4, epochs=2)  # drop share 1/2, then 1: settled at epoch 1's start
    hook.on_epoch_start(model, 1)
    assert hook.aim.settled
    x = torch.rand(2, 3, 64, 64)

    def step(settled):
        hook.aim.settled = settled  # False: the dropout (every image, share 1) runs
        model.train().zero_grad()
        out = model(x)
        sum(o.float().pow(2).mean() for o in out).backward()
        raw = {i: model.module_list[i].bn.weight.grad.clone() for i in hook.convs}
        hook.after_backward(model, 1)
        return out, raw, [p.grad.clone() for p in model.parameters()]
    out_a, raw_a, grads_a = step(False)
    out_b, raw_b, grads_b = step(True)
    for a, b in zip(out_a, out_b):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)
    assert not any(raw_a[i][c].any() for i, c in hook.aim.cut.items())
    assert any(raw_b[i][c].any() for i, c in hook.aim.cut.items())  # the zero gammas' own
    for a, b in zip(grads_a, grads_b):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def test_target_flag_errors():
    from prune.sparsity import sparsity_hook
    with pytest.raises(ValueError, match='--sr-target'):
        SparsityHook(0.01, 2, target=0.3)
    with pytest.raises(ValueError, match='--sr-target'):
        SparsityHook(0.01, 1, target=1.5)
    with pytest.raises(ValueError, match='--sr-target'):
        sparsity_hook(train.TrainOptions(sr=True, prune=1, sr_target=0.3, quantized=3))
    with pytest.raises(ValueError, match='--sr-fade'):
        sparsity_hook(train.TrainOptions(sr=True, prune=1, sr_target=0.3, sr_fade=0))
    with pytest.raises(ValueError, match='--sr-fade'):
        sparsity_hook(train.TrainOptions(sr=True, prune=1, sr_fade=0.5))
    with pytest.raises(ValueError, match='--sr-round'):
        sparsity_hook(train.TrainOptions(sr=True, prune=1, sr_round=8))
    with pytest.raises(ValueError, match='--sr-round'):
        sparsity_hook(train.TrainOptions(sr=True, prune=1, sr_target=0.3, sr_round=0))


def test_rounded_target_keeps_whole_channel_blocks_and_slim_cuts_the_same():
    from prune.methods import METHODS
    from prune.aim import LAYER_KEEP
    from prune.sparsity import sparsity_hook
    from prune.surgery import prune_model
    model = _random_gammas(Darknet(cfg_path('yolov3-mini')).eval())
    hook = sparsity_hook(train.TrainOptions(sr=True, prune=1, sr_target=0.3, sr_round=16))
    hook.on_model(model)
    hook.on_epoch_start(model, 0)
    kept = {i: int((~cut).sum()) for i, cut in hook.aim.cut.items()}
    assert all(k % 16 == 0 or k == len(hook.aim.cut[i]) for i, k in kept.items())
    assert any(k < len(hook.aim.cut[i]) for i, k in kept.items())
    with torch.no_grad():  # what the aimed training ends with
        for i, cut in hook.aim.cut.items():
            model.module_list[i].bn.weight[cut] = 0
    plan = METHODS['slim'].plan(model, hook.aim.cut_share(), layer_keep=LAYER_KEEP, rank='layer',
                             round=16)
    assert all(torch.equal(plan.masks[i], ~cut) for i, cut in hook.aim.cut.items())
    assert prune_model(model, plan).info(320)['bflops'] / model.info(320)['bflops'] <= 0.3


def test_fade_sets_the_epoch_the_cut_completes():
    from prune.sparsity import sparsity_hook
    hook = sparsity_hook(train.TrainOptions(sr=True, prune=1, sr_target=0.3, epochs=6, sr_fade=1))
    assert [hook.aim.drop_probability(e) for e in range(6)] == [(e + 1) / 6 for e in range(6)]
    hook = sparsity_hook(train.TrainOptions(sr=True, prune=1, sr_target=0.3, epochs=6, sr_fade=0.3))
    assert [hook.aim.drop_probability(e) for e in range(3)] == [0.5, 1, 1]


def test_target_training_logs_the_percent_it_aims_at(tiny_data, tmp_path):
    from models.weights import load_checkpoint
    train.run(data=str(tiny_data), epochs=3, batch_size=8, img_size=[128], workers=0,
              project=str(tmp_path), sr=True, s=0.01, prune=1, sr_target=0.4)
    with open(tmp_path / 'exp' / 'results.csv') as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 and all(0 < float(r['sr_target_cut']) < 1 for r in rows)
    assert [float(r['sr_target_drop']) for r in rows] == [0.5, 1.0, 1.0]
    best = load_checkpoint(tmp_path / 'exp' / 'weights' / 'best.pt')
    assert best['epoch'] >= 1  # never a model that still has its cut channels
