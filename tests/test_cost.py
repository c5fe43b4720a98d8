"""What a channel costs, what a cut of the small gammas would save, and the percent that meets a
BFLOPs budget."""
import pytest
import torch

from models import Darknet
from prune.cost import bflops_below, channel_costs, cost_weights, percent_for_bflops
from prune.deps import prunable_groups
from prune.methods import METHODS
from prune.surgery import prune_model
from tests.conftest import cfg_path


def test_channel_cost_is_the_conv_and_its_reader():
    # yolov3-mini layer 0: 3 -> 16 channels, 3x3, 160x160 out; read by layer 1: 16 -> 32, 3x3, 80x80
    model = Darknet(cfg_path('yolov3-mini')).eval()
    groups = prunable_groups(model, 1)
    assert groups[0].convs == [0]
    macs = 3 * 9 * 160 * 160 + 32 * 9 * 80 * 80
    assert channel_costs(model, groups, 320)[0] == pytest.approx(2 * macs / 1e9, rel=1e-6)


def test_cost_weights_average_one_and_favour_early_layers():
    model = Darknet(cfg_path('yolov3-mini')).eval()
    groups = prunable_groups(model, 1)
    w = cost_weights(model, groups, 320)
    counts = [model.module_list[g.convs[0]].conv.out_channels for g in groups]
    assert sum(wi * n for wi, n in zip(w, counts)) / sum(counts) == pytest.approx(1)
    by_conv = {i: wi for g, wi in zip(groups, w) for i in g.convs}
    assert by_conv[3] > 4 * by_conv[21]  # an 80x80 channel costs more than a 10x10 one


def test_bflops_below_counts_the_channels_a_cut_would_take():
    model = Darknet(cfg_path('yolov3-mini')).eval()
    groups = prunable_groups(model, 1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.fill_(1.0)
        model.module_list[0].bn.weight[:] = 0  # 15 of 16 go (each group keeps one)
    # layer 0: 3 -> 16 channels, 3x3, 160x160 out; read by layer 1: 16 -> 32, 3x3, 80x80
    saved = 15 * 2 * (3 * 9 * 160 * 160 + 32 * 9 * 80 * 80) / 1e9
    share = bflops_below(model, groups, 320, 1e-2)
    assert share == pytest.approx(saved / model.info(320)['bflops'], rel=1e-6)


@pytest.mark.parametrize('keep', [0.6, 0.3])
def test_percent_for_bflops_is_the_smallest_that_fits(keep):
    model = Darknet(cfg_path('yolov3-mini')).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0, 1, generator=torch.Generator().manual_seed(0))
    full = model.info(320)['bflops']

    def ratio(pct):
        return prune_model(model, METHODS['slim'].plan(model, pct)).info(320)['bflops'] / full

    pct = percent_for_bflops(model, keep, 320, METHODS['slim'].plan)
    assert ratio(pct) <= keep < ratio(pct - 0.01)
