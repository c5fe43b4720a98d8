"""Pruning is right by construction: the cut network computes what the masked one computes, and
the masked one what the original computes with the pruned gammas set to zero."""
import copy

import pytest
import torch
from torch import nn

from models.layers import ConvBNAct
from prune.deps import residual_blocks
from prune.masks import channel_plan, layer_plan
from prune.methods import METHODS
from prune.surgery import PruneError, PrunePlan, layer_masks, masked_model, prune_model
from tests.conftest import CFGS

SCRIPTS = ['normal_prune', 'regular_prune', 'shortcut_prune', 'slim_prune', 'layer_prune',
           'layer_channel_prune']
LAYER_SCRIPTS = {'layer_prune', 'layer_channel_prune'}
SIZE = (64, 96)


def zero_some_gammas(model, share=0.3, seed=1):
    """A copy with a share of all gammas at zero, as sparse training leaves them."""
    model = copy.deepcopy(model)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight[torch.rand(m.num_features, generator=g) < share] = 0
    return model


def script_plan(script, model):
    select = METHODS[script.removesuffix('_prune')].plan
    kw = {'shortcuts': 1} if script == 'layer_prune' else {'percent': 0.4}
    if script == 'layer_channel_prune':
        kw['shortcuts'] = 1
    return select(model, **kw)


def heads(model, x):
    """Every output: decoded detections (when the network detects) and the raw heads."""
    decoded, raw = model(x)
    return ([decoded] if decoded is not None else []) + list(raw)


def applies(script, model):
    return script not in LAYER_SCRIPTS or residual_blocks(model)


@pytest.mark.parametrize('name', CFGS)
@pytest.mark.parametrize('script', SCRIPTS)
def test_pruned_equals_masked(script, name, built):
    model = zero_some_gammas(built(name))
    if not applies(script, model):
        with pytest.raises(PruneError, match='residual blocks'):
            script_plan(script, model)
        return
    plan = script_plan(script, model)
    masked, pruned = masked_model(model, plan), prune_model(model, plan)
    x = torch.rand(2, 3, *SIZE, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for a, b in zip(heads(masked, x), heads(pruned, x)):
            assert a.shape == b.shape
            assert (a - b).abs().max() < 1e-4
    masks, gone = layer_masks(model, plan), plan.dropped_layers()
    kept = [int(masks[i].sum()) for i, m in enumerate(model.module_list)
            if isinstance(m, ConvBNAct) and i not in gone]
    assert kept == [m.conv.out_channels for m in pruned.module_list if isinstance(m, ConvBNAct)]
    assert len(pruned.module_list) == len(model.module_list) - 3 * len(plan.dropped)
    assert sum(p.numel() for p in pruned.parameters()) < sum(p.numel() for p in model.parameters())


def zeroed_original(model, plan):
    """What pruning approximates: the pruned gammas set to zero (for a dropped block: all of its
    first conv's, none of its second's); convs without BN get their pruned rows zeroed."""
    model = copy.deepcopy(model)
    masks = layer_masks(model, plan)
    with torch.no_grad():
        for i, m in enumerate(model.module_list):
            if not isinstance(m, ConvBNAct):
                continue
            gone = ~plan.masks[i] if i in plan.masks else torch.zeros_like(masks[i])
            if i in plan.dropped_layers():  # a dropped block: its first conv's gammas, all
                gone = torch.full_like(gone, i + 2 in plan.dropped)
            if isinstance(m.bn, nn.BatchNorm2d):
                m.bn.weight[gone] = 0
            else:
                m.conv.weight[gone] = 0
    return model


def circular(model):
    """Wrap-around padding: a constant channel stays constant everywhere, so the comparison holds
    on the whole map; with zero padding it holds only away from the border."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            m.padding_mode = 'circular'
    return model


@pytest.mark.parametrize('name', ['yolov3-mini', 'yolov3-tiny', 'yolov4-tiny',
                                  'yolov3-mobilenetv3', 'yolov3tiny-mobilenetv3-small'])
@pytest.mark.parametrize('script', ['slim_prune', 'layer_channel_prune'])
def test_compensation_reproduces_zeroed_gammas(script, name, built):
    model = zero_some_gammas(built(name))
    if not applies(script, model):
        return
    plan = script_plan(script, model)
    model = model.double()  # an identity up to rounding: compare where rounding is negligible
    x = torch.rand(1, 3, *SIZE, generator=torch.Generator().manual_seed(0)).double()
    with torch.no_grad():
        want = heads(circular(zeroed_original(model, plan)), x)
        got = heads(circular(masked_model(model, plan)), x)
        before = heads(circular(copy.deepcopy(model)), x)
    for a, b in zip(want, got):
        assert (a - b).abs().max() < 1e-4
    assert max((a - b).abs().max() for a, b in zip(want, before)) > 1e-2  # not a trivial plan


def test_compensation_matters():
    """Without moving the constants, cutting channels changes the outputs."""
    from prune import surgery
    model = zero_some_gammas(_mini())
    plan = channel_plan(model, 1, 0.4, clamp=True)
    x = torch.rand(1, 3, *SIZE, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = circular(zeroed_original(model, plan))(x)[0]
        keep = surgery.compensate
        try:
            surgery.compensate = lambda model, masks: None
            skipped = circular(masked_model(model, plan))(x)[0]
        finally:
            surgery.compensate = keep
    assert (want - skipped).abs().max() > 1e-2


def _mini():
    from tests.conftest import _built
    return _built('yolov3-mini')


def test_too_high_percent_names_the_highest_that_works():
    model = zero_some_gammas(_mini(), share=0.0)
    with pytest.raises(PruneError, match=r'highest --percent that works is ([0-9.]+)') as e:
        channel_plan(model, 0, 0.99)
    best = float(str(e.value).rsplit(' ', 1)[1])
    assert 0 < best < 0.99
    plan = channel_plan(model, 0, best)
    assert all(m.any() for m in plan.masks.values())
    with pytest.raises(PruneError, match='--percent must be in'):
        channel_plan(model, 0, 1.0)


def test_regular_rounds_to_multiples_of_8_and_slim_keeps_a_floor():
    model = zero_some_gammas(_mini(), share=0.5)
    regular = METHODS['regular'].plan(model, 0.5)
    for i, mask in regular.masks.items():
        n, total = int(mask.sum()), len(mask)
        assert n % 8 == 0 or n == total, (i, n)
    slim = METHODS['slim'].plan(model, 0.95, layer_keep=0.25)
    for i, mask in slim.masks.items():
        assert mask.sum() >= 0.25 * len(mask), i
    rounded = METHODS['slim'].plan(model, 0.7, round=8)
    for i, mask in rounded.masks.items():
        n, total = int(mask.sum()), len(mask)
        assert n % 8 == 0 or n == total, (i, n)



def test_layer_rank_ignores_the_scale_of_a_layer():
    # BN after layer 2's conv feeds conv 3 and its BN: scaling its gammas (and betas) is free for
    # the network, as the L1 push does under Adam; a global threshold then empties the layer
    model = zero_some_gammas(_mini(), share=0.3)
    shrunk = copy.deepcopy(model)
    with torch.no_grad():
        shrunk.module_list[2].bn.weight.mul_(0.01)
        shrunk.module_list[2].bn.bias.mul_(0.01)
    layer = [channel_plan(m, 1, 0.4, clamp=True, rank='layer').masks for m in (model, shrunk)]
    assert all(torch.equal(layer[0][i], layer[1][i]) for i in layer[0])
    glob = [channel_plan(m, 1, 0.4, clamp=True).masks[2].sum() for m in (model, shrunk)]
    assert glob[1] == 1 < glob[0]
    with pytest.raises(PruneError, match='--rank must be one of'):
        channel_plan(model, 1, 0.4, rank='local')

def test_chain_masks_are_the_union_of_members():
    model = zero_some_gammas(_mini(), share=0.5)
    plan = channel_plan(model, 1, 0.3, clamp=True)
    chain = [1, 3]  # the first stage's residual stream
    union = torch.zeros_like(plan.masks[1])
    thr = sorted(torch.cat([model.module_list[i].bn.weight.abs() for i in plan.masks]).tolist())
    cut = thr[int(0.3 * len(thr)) - 1]
    for i in chain:
        union |= model.module_list[i].bn.weight.abs() > cut
    assert torch.equal(plan.masks[1], plan.masks[3]) and torch.equal(plan.masks[1], union)


def test_layer_prune_drops_the_least_important_blocks_and_renumbers_routes(built):
    model = zero_some_gammas(built('yolov3'), share=0.0)
    blocks = residual_blocks(model)
    assert len(blocks) == 23
    with torch.no_grad():
        for s in blocks[5:8]:
            model.module_list[s - 2].bn.weight.mul_(0.01)
    plan = layer_plan(model, 3)
    assert plan.dropped == blocks[5:8]
    pruned = prune_model(model, plan)
    routes = [b.options['layers'] for b in pruned.blocks[1:] if b.type == 'route']
    original = [b.options['layers'] for b in model.blocks[1:] if b.type == 'route']
    assert routes != original  # absolute references past the dropped blocks moved
    with pytest.raises(PruneError, match='--shortcuts 24: this network has 23'):
        layer_plan(model, 24)


def test_inconsistent_masks_are_refused():
    model = _mini()
    with pytest.raises(PruneError, match='masked differently'):
        layer_masks(model, PrunePlan(masks={1: torch.arange(32) % 2 == 0}))
    head = model.yolo_layers[0] - 1
    n = model.module_list[head].conv.out_channels
    with pytest.raises(PruneError, match='feeds a yolo layer'):
        layer_masks(model, PrunePlan(masks={head: torch.arange(n) > 0}))
    with pytest.raises(PruneError, match='removes all'):
        layer_masks(model, PrunePlan(masks={0: torch.zeros(16, dtype=torch.bool)}))


def test_outputs_named_after_a_path_cfg_never_cfg_text(tmp_path):
    """A run started from a .pt keeps the cfg text in its options: the pruned files take the
    checkpoint's name then (the text made an OSError 'File name too long')."""
    from models.weights import save_checkpoint
    from prune.runner import _source_cfg_name
    for cfg, name in (('cfg/yolov3-mini.cfg', 'yolov3-mini'), ('[net]\nwidth=64\n', 'last')):
        pt = tmp_path / 'last.pt'
        save_checkpoint({'model': {}, 'opt': {'cfg': cfg}}, pt)
        assert _source_cfg_name(pt, '') == name
