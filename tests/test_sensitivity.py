"""quantize/sensitivity.py: a loss per layer for int8 and 2:4, and a plan within the budget that
is what its cfg builds to."""
import pytest

from models import Darknet
from quantize import sensitivity
from quantize.modules import QuantConvBNAct
from quantize.qat import quantize_model
from quantize.config import QuantConfig
from tests.conftest import ROOT


@pytest.fixture(scope='module')
def planned(tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp('sens')
    return sensitivity.run(weights=str(ROOT / 'weights' / 'yolov3-mini.pt'), data=str(tiny_data),
                           calib=8, subset=8, max_drop=2.0, sparse24=True, int4=True, img_size=128,
                           batch_size=8, workers=0, project=str(out))


def test_every_conv_gets_an_int8_and_a_2_4_sensitivity(planned):
    layers = planned['layers']
    model = Darknet(ROOT / 'cfg' / 'yolov3-mini.cfg')
    convs = [i for i, m in enumerate(model.module_list) if hasattr(m, 'conv')]
    assert sorted(map(int, layers)) == convs
    assert layers['0']['sparse24'] is None  # 3 input channels: never 2:4
    assert any(r['int8'] != 0 for r in layers.values())
    assert any(r['sparse24'] for r in layers.values())
    assert any(r['int4'] > r['int8'] for r in layers.values())  # 4-bit weights cost more


def test_the_written_plan_is_within_budget_and_builds_as_measured(planned):
    plan = planned['plan']
    assert plan['drop'] <= 2.0
    tried = [t for t in planned['tried'] if t['float'] == len(plan['float'])
             and t['dense'] is not None]
    assert any(t['drop'] == plan['drop'] for t in tried) or plan['sparse_layers'] == 0
    model = Darknet(plan['cfg'])
    precisions = {i: model.blocks[i + 1].get('precision') for i, m in
                  enumerate(model.module_list) if hasattr(m, 'conv')}
    assert set(precisions.values()) <= {'fp32', 'int8', 'int4'}
    assert [i for i, p in precisions.items() if p == 'fp32'] == plan['float']
    assert [i for i, p in precisions.items() if p == 'int4'] == plan['int4']
    q = quantize_model(model, QuantConfig(mode=3))
    quantized = [m for m in q.module_list if isinstance(m, QuantConvBNAct)]
    assert len(quantized) == plan['int8_layers'] + len(plan['int4'])
    assert sorted(m.w_bits for m in quantized).count(4) == len(plan['int4'])
    assert planned['rule_of_thumb']['int8_layers'] == len(precisions) - 4  # first + 3 heads
