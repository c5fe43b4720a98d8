"""train.py without --cfg trains the network a .pt holds: a pruned checkpoint stays pruned."""
import train
from models import Darknet
from models.layers import ConvBNAct
from models.weights import load_checkpoint, save_checkpoint
from prune.masks import channel_plan
from prune.surgery import prune_model
from tests.conftest import randomize_bn


def test_a_pruned_checkpoint_trains_as_pruned_without_cfg(tiny_data, tmp_path):
    model = randomize_bn(Darknet('cfg/yolov3-mini.cfg'))
    pruned = prune_model(model, channel_plan(model, mode=1, percent=0.5))
    save_checkpoint({'cfg': pruned.cfg_text, 'model': pruned.state_dict()}, tmp_path / 'p.pt')
    train.run(weights=str(tmp_path / 'p.pt'), data=str(tiny_data), epochs=1, batch_size=8,
              img_size=[128], workers=0, notest=True, project=str(tmp_path), name='t')
    trained = load_checkpoint(tmp_path / 't' / 'weights' / 'last.pt')
    widths = [m.conv.out_channels for m in Darknet(trained['cfg']).module_list
              if isinstance(m, ConvBNAct)]
    assert widths == [m.conv.out_channels for m in pruned.module_list if isinstance(m, ConvBNAct)]
    assert train.own_cfg('') == train.DEFAULT_CFG
