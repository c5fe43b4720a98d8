"""lightNet's per-layer pruning=: the cfg method removes the asked share of filters by L1
norm, keeps tied convs on one mask, leaves fixed widths whole; the cut network equals the masked."""
import pytest
import torch

from models import Darknet
from models.cfg import CfgError, parse_cfg, save_cfg
from models.layers import ConvBNAct
from models.weights import load_model, save_checkpoint
from prune.masks import cfg_plan
from prune.runner import run_method
from prune.surgery import PruneError, masked_model, prune_model
from tests.conftest import cfg_path, randomize_bn

# layer 2: a plain conv; 3: tied to 1 by the shortcut at 4; 25: feeds a yolo head
ASKED = {2: 0.5, 3: 0.25, 25: 0.5}


def marked_model(asked=ASKED):
    blocks = parse_cfg(cfg_path('yolov3-mini'))
    for i, fraction in asked.items():
        blocks[i + 1].options['pruning'] = str(fraction)
    torch.manual_seed(0)
    return randomize_bn(Darknet(blocks)).eval()


def test_the_asked_share_of_filters_goes_by_l1_norm():
    model = marked_model()
    plan = cfg_plan(model)
    assert set(plan.masks) == {1, 2, 3}  # 25 stays whole: a head's width is fixed
    w = model.module_list[2].conv.weight.detach()
    kept = plan.masks[2]
    assert int(kept.sum()) == w.shape[0] - int(0.5 * w.shape[0])
    l1 = w.abs().sum((1, 2, 3))
    assert l1[kept].min() >= l1[~kept].max()
    assert torch.equal(plan.masks[1], plan.masks[3])  # one mask for the shortcut chain
    n = len(plan.masks[1])
    assert int(plan.masks[1].sum()) == n - int(0.25 * n)


def test_pruned_equals_masked_and_the_cfg_drops_the_keys():
    model = marked_model()
    plan = cfg_plan(model)
    masked, pruned = masked_model(model, plan), prune_model(model, plan)
    x = torch.rand(2, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for a, b in zip(masked(x)[1], pruned(x)[1]):
            assert (a - b).abs().max() < 1e-4
    convs = [m.conv.out_channels for m in pruned.module_list if isinstance(m, ConvBNAct)]
    assert convs[2] == int(plan.masks[2].sum())
    assert all('pruning' not in b.options for b in pruned.blocks)


def test_the_script_writes_the_reduced_cfg_and_weights(tmp_path):
    model = marked_model()
    save_cfg(model.blocks, tmp_path / 'marked.cfg')
    save_checkpoint({'cfg': model.cfg_text, 'model': model.state_dict()}, tmp_path / 'w.pt')
    report = run_method('cfg', cfg=str(tmp_path / 'marked.cfg'), weights=str(tmp_path / 'w.pt'),
                        eval=False, latency_runs=0, project=str(tmp_path), name='p')
    assert report['max_abs_diff_pruned_vs_masked'] < 1e-3
    written = parse_cfg(report['cfg'])
    assert not any('pruning' in b.options for b in written)
    assert written[3].get('filters') == int(cfg_plan(model).masks[2].sum())
    darknet = load_model(report['weights'], report['cfg']).eval()  # the files darknet reads
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(darknet(x)[0], load_model(report['pt']).eval()(x)[0], atol=1e-4)


def test_bad_fractions_and_cfgs_without_the_key_get_one_line():
    with pytest.raises(CfgError, match=r'yolov3-mini\.cfg:\d+: .*pruning=1\.5'):
        cfg_plan(marked_model({2: 1.5}))
    with pytest.raises(PruneError, match='no \\[convolutional\\] with pruning='):
        cfg_plan(marked_model({}))
    with pytest.raises(PruneError, match='no \\[convolutional\\] with pruning='):
        cfg_plan(marked_model({25: 0.5}))  # only a fixed width asks

