"""The cfg dialect of darknet and lightNet: every key parses and writes back as written, the ones
this toolkit does not implement are refused by name, partial residuals compute darknet's sum,
and the activations darknet lacks are flagged when exporting to it."""
import logging

import numpy as np
import pytest
import torch

import export
from models import CfgError, Darknet, parse_cfg, parse_cfg_text, write_cfg
from models.__main__ import run as summary
from models.dialect import (BUILT, COMPUTE, DEPLOY, GENERIC_TRAINING, KNOWN_BLOCKS, TRAINING,
                            known_keys)
from models.weights import load_darknet_weights, save_darknet_weights, save_checkpoint
from tests.conftest import CFGS, cfg_path, randomize_bn

# A cfg in canonical form (key=value, one blank line between blocks) using every lightNet key
# the issue names: training-only ones kept and ignored, deployment ones kept and typed.
EVERY_KEY = '''[net]
width=64
height=64
channels=3
batch=8
learning_rate_min=0.00001
sgdr_cycle=1000
sgdr_mult=2
policy=sgdr

[convolutional]
batch_normalize=1
filters=16
size=3
stride=2
pad=1
activation=relu
precision=fp32
dont_update=1

[convolutional]
batch_normalize=1
filters=16
size=3
stride=1
pad=1
activation=relu
sparse=1
pruning=0.25
precision=int8
stopbackward=1

[convolutional]
filters=21
size=1
stride=1
pad=1
activation=logistic
precision=fp16

[yolo]
mask=0,1,2
anchors=4,4, 8,8, 16,16
classes=2
num=3
new_coords=1
scale_x_y=2.0
counters_per_class=8, 2
iou_loss=ciou
iou_normalizer=0.07
cls_normalizer=0.25
names=car,person
colormap=0,0,255, 255,0,0

[route]
layers=-3

[convolutional]
filters=3
size=1
stride=1
pad=1
activation=linear

[softmax]
groups=1024
stride=1024
num=3
classes=3
names=road,lane,other
colormap=128,64,128, 244,35,232, 0,0,0
'''


def test_every_lightnet_key_parses_builds_and_writes_back_as_written():
    blocks = parse_cfg_text(EVERY_KEY, 'every.cfg')
    assert write_cfg(blocks) == EVERY_KEY
    model = Darknet(EVERY_KEY)
    assert model.yolo_layers == [3] and model.seg_layers == [6] and model.seg_nc == 3
    conv = blocks[2]
    assert (conv.get('sparse'), conv.get('pruning'), conv.get('precision')) == (1, 0.25, 'int8')
    assert blocks[4].get('names') == ['car', 'person']
    assert blocks[7].get('colormap') == [128, 64, 128, 244, 35, 232, 0, 0, 0]


@pytest.mark.parametrize('name', CFGS)
def test_shipped_cfgs_write_back_to_a_fixed_point(name):
    blocks = parse_cfg(cfg_path(name))
    text = write_cfg(blocks)
    assert parse_cfg_text(text) == blocks and write_cfg(parse_cfg_text(text)) == text
    Darknet(cfg_path(name))


def test_aliases_are_kept_as_written():
    text = '[net]\nwidth=32\nheight=32\n\n[conv]\nfilters=21\nsize=1\nactivation=linear\n\n' \
           '[yolo]\nmask=0,1,2\nanchors=1,1, 2,2, 3,3\nclasses=2\nnum=3\n'
    blocks = parse_cfg_text(text)
    assert blocks[1].type == 'convolutional' and write_cfg(blocks) == text


@pytest.mark.parametrize('extra, match', [
    ('nonsense=1', r"every.cfg:\d+: \[convolutional\] unknown key 'nonsense'"),
    ('xnor=1', "key 'xnor' is darknet's but not supported"),
    ('quant=1\nmax_float=x', r"bad value 'max_float=x' \(expected float\)"),
    ('sparse=yes', r"bad value 'sparse=yes' \(expected int\)")])
def test_bad_keys_name_the_file_and_line(extra, match):
    text = EVERY_KEY.replace('dont_update=1', extra)
    with pytest.raises(CfgError, match=match):
        parse_cfg_text(text, 'every.cfg')


def test_a_bad_precision_names_the_choices():
    text = EVERY_KEY.replace('precision=int8', 'precision=int3')
    with pytest.raises(CfgError, match=r"every.cfg:30: \[convolutional\] 'precision=int3' is "
                                       'not one of fp32, fp16, int8, int4'):
        parse_cfg_text(text, 'every.cfg')


def test_every_parser_block_is_known_and_unbuilt_ones_are_refused_by_name():
    darknet_blocks = {'shortcut', 'scale_channels', 'sam', 'crop', 'cost', 'detection', 'region',
                      'yolo', 'Gaussian_yolo', 'local', 'convolutional', 'activation', 'net',
                      'crnn', 'gru', 'lstm', 'conv_lstm', 'history', 'rnn', 'connected',
                      'maxpool', 'local_avgpool', 'reorg3d', 'reorg', 'avgpool', 'dropout',
                      'normalization', 'batchnorm', 'softmax', 'logistic', 'contrastive',
                      'route', 'upsample', 'empty', 'implicit'}
    assert darknet_blocks == set(KNOWN_BLOCKS)
    text = '[net]\nwidth=32\nheight=32\n\n[lstm]\noutput=8\nbatch_normalize=1\n'
    blocks = parse_cfg_text(text, 'rnn.cfg')  # parses: its keys are darknet's
    with pytest.raises(CfgError, match=r'rnn.cfg:5: \[lstm\] a darknet block this toolkit does '
                                       'not build'):
        Darknet(blocks)
    assert 'lstm' not in BUILT


def test_training_keys_are_never_computation_keys():
    for block in KNOWN_BLOCKS:
        typed = set(COMPUTE[block]) | set(DEPLOY.get(block, {}))
        assert not typed & (TRAINING.get(block, set()) | GENERIC_TRAINING), block
        assert typed <= known_keys(block)


def test_segmentation_softmax_must_cover_every_pixel():
    with pytest.raises(CfgError, match=r'groups=1000, but a per-pixel \[softmax\] needs H\*W of '
                                       r'its input, 32x32 = 1024'):
        Darknet(EVERY_KEY.replace('groups=1024', 'groups=1000'))
    with pytest.raises(CfgError, match=r"classes=4 but the layer before has 3 channels"):
        Darknet(EVERY_KEY.replace('classes=3', 'classes=4'))


PARTIAL = '''[net]
width=8
height=8
channels=3

[convolutional]
filters=4
size=1
stride=1
activation=linear

[convolutional]
filters=2
size=1
stride=1
activation=linear

[shortcut]
from=-2
activation=linear

[convolutional]
filters=6
size=1
stride=1
activation=linear

[shortcut]
from=-3
activation=linear

[convolutional]
filters=21
size=1
stride=1
activation=linear

[yolo]
mask=0,1,2
anchors=1,1, 2,2, 3,3
classes=2
num=3
'''


def test_partial_residual_adds_over_the_shared_channels_as_darknet_does():
    """darknet (shortcut_multilayer_cpu) adds element i of the other input wherever i is below
    that input's size: with equal h and w, its first channels."""
    model = Darknet(PARTIAL).eval()
    x = torch.rand(1, 3, 8, 8)
    outs, saved = [], x
    with torch.no_grad():
        for m in model.module_list[:5]:
            saved = m(saved, [outs[j] for j in m.froms]) if m.froms else m(saved)
            outs.append(saved)
    a, b, s1, c, s2 = outs
    assert s1.shape[1] == 2 and torch.equal(s1, b + a[:, :2])       # fewer channels: first 2
    assert s2.shape[1] == 6 and torch.equal(s2[:, :2], c[:, :2] + b)  # more: the rest as is
    assert torch.equal(s2[:, 2:], c[:, 2:])
    by_hand = (b + a[:, :2])[0, 1, 3, 4].item()
    assert s1[0, 1, 3, 4].item() == by_hand


def test_partial_residual_in_opencvs_darknet_reader(tmp_path):
    """OpenCV's darknet reader, an independent implementation, computes the same network."""
    cv2 = pytest.importorskip('cv2')
    if not hasattr(cv2.dnn, 'readNetFromDarknet'):
        pytest.skip('needs opencv < 5 (requirements.txt pins it)')
    from tests.test_opencv_darknet import _ours_in_opencv_layout
    model = randomize_bn(Darknet(PARTIAL)).eval()
    (tmp_path / 'p.cfg').write_text(PARTIAL)
    save_darknet_weights(model, tmp_path / 'p.weights')
    net = cv2.dnn.readNetFromDarknet(str(tmp_path / 'p.cfg'), str(tmp_path / 'p.weights'))
    blob = np.random.default_rng(0).random((1, 3, 8, 8), dtype=np.float32)
    net.setInput(blob)
    theirs = net.forward(net.getUnconnectedOutLayersNames())
    with torch.no_grad():
        ours = _ours_in_opencv_layout(model, model(torch.from_numpy(blob))[1], 8)
    assert np.abs(theirs[0][:, :5] - ours[0][:, :5]).max() < 1e-4


def test_weights_round_trip_of_a_partial_residual(tmp_path):
    model = randomize_bn(Darknet(PARTIAL)).eval()
    save_darknet_weights(model, tmp_path / 'p.weights')
    again = Darknet(PARTIAL).eval()
    load_darknet_weights(again, tmp_path / 'p.weights')
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(model(x)[0], again(x)[0])


def test_darknet_export_warns_about_activations_darknet_lacks(tmp_path, caplog):
    model = Darknet(cfg_path('yolov3tiny-mobilenetv3-small'))
    save_checkpoint({'cfg': model.cfg_text, 'model': model.state_dict()}, tmp_path / 'm.pt')
    logger = logging.getLogger('yolo')
    logger.addHandler(caplog.handler)
    try:
        export.run(weights=str(tmp_path / 'm.pt'), fmt='darknet', project=str(tmp_path))
    finally:
        logger.removeHandler(caplog.handler)
    line = next(r.getMessage() for r in caplog.records if 'darknet has no' in r.getMessage())
    assert 'hard_sigmoid/hswish' in line and 'run relu in layers 0 (hswish)' in line
    info = summary(cfg_path('yolov3tiny-mobilenetv3-small'), as_json=True)
    assert info['darknet_extensions'] == ['hard_sigmoid', 'hswish']
    assert summary(cfg_path('yolov3-mini'), as_json=True)['darknet_extensions'] == []
