"""Channel dependencies from the cfg: shortcut chains, CSP route slices, SE and depthwise ties."""
import pytest

from models import Darknet
from models.layers import ConvBNAct
from prune.deps import channel_groups, prunable_groups
from tests.conftest import CFGS, cfg_path


def test_yolov3_mini_groups():
    model = Darknet(cfg_path('yolov3-mini'))
    assert [g.convs for g in prunable_groups(model, 0)] == [
        [0], [2], [6], [9], [13], [16], [20], [23], [24], [28], [31], [32], [36], [39], [40]]
    # each stage: the downsampling conv and the second conv of every residual block
    assert [g.convs for g in prunable_groups(model, 1) if g.merged] == [
        [1, 3], [5, 7, 10], [12, 14, 17], [19, 21]]
    fixed = [g for g in channel_groups(model) if g.fixed]
    assert sorted(c for g in fixed for c in g.convs) == sorted(j - 1 for j in model.yolo_layers)


def test_yolov3_counts():
    """75 convs: 28 in the five shortcut chains, 3 head convs feeding yolo layers."""
    model = Darknet(cfg_path('yolov3'))
    assert sum(len(g.convs) for g in prunable_groups(model, 0)) == 44
    assert sum(len(g.convs) for g in prunable_groups(model, 1)) == 72
    chains = sorted(len(g.convs) for g in channel_groups(model) if g.merged)
    assert chains == [2, 3, 5, 9, 9]


def test_csp_route_slices_are_fixed():
    model = Darknet(cfg_path('yolov4-tiny'))
    fixed = {c: g.why for g in channel_groups(model) if g.fixed for c in g.convs}
    sliced = [i for i, m in enumerate(model.module_list) if getattr(m, 'groups', 1) > 1
              and not isinstance(m, ConvBNAct)]
    assert sliced  # the CSP routes
    for r in sliced:
        for j in model.module_list[r].froms:
            assert fixed[j] == 'sliced by a route with groups'


def test_squeeze_excitation_and_depthwise_tie_channels():
    model = Darknet(cfg_path('yolov3-mobilenetv3'))
    groups = channel_groups(model)
    dw = [i for i, m in enumerate(model.module_list)
          if isinstance(m, ConvBNAct) and m.conv.groups > 1]
    for i in dw:
        g = next(g for g in groups if i in g.convs)
        assert i - 1 in g.convs or i == 1  # tied to the expansion conv feeding it
        assert g.merged
    se_excite = [i + 2 for i, m in enumerate(model.module_list)
                 if type(m).__name__ == 'GlobalAvgPool']
    for i in se_excite:  # the excitation conv (no BN) follows the map it scales
        g = next(g for g in groups if i in g.convs)
        assert not g.fixed and len(g.convs) >= 2


@pytest.mark.parametrize('name', CFGS)
def test_every_conv_in_exactly_one_group(name):
    model = Darknet(cfg_path(name))
    convs = [i for i, m in enumerate(model.module_list) if isinstance(m, ConvBNAct)]
    grouped = sorted(c for g in channel_groups(model) for c in g.convs)
    assert grouped == convs
    with pytest.raises(ValueError, match='mode must be 0 or 1'):
        prunable_groups(model, 2)
