import subprocess
import sys

import pytest

from models import CfgError, Darknet, parse_cfg, parse_cfg_text, write_cfg
from tests.conftest import CFGS, ROOT, cfg_path

MINI_HEAD = """
[convolutional]
filters=21
size=1
activation=linear

[yolo]
mask=0,1,2
anchors=10,10, 20,20, 30,30
classes=2
num=3
"""


@pytest.mark.parametrize('name', CFGS)
def test_write_parse_round_trip(name):
    blocks = parse_cfg(cfg_path(name))
    text = write_cfg(blocks)
    again = parse_cfg_text(text)
    assert again == blocks
    assert write_cfg(again) == text


def test_training_keys_survive_round_trip():
    blocks = parse_cfg_text(write_cfg(parse_cfg(cfg_path('yolov4'))))
    yolo = next(b for b in blocks if b.type == 'yolo')
    assert yolo.options['iou_loss'] == 'ciou'
    assert yolo.options['ignore_thresh'] == '.7'
    assert blocks[0].options['burn_in'] == '1000'
    assert blocks[0].options['steps'] == '400000,450000'


def test_aliases_and_comments():
    text = '# a comment\n[network]\nwidth=64 # trailing\nheight=64\n[conv]\nfilters=21\n' \
           'size=1\nactivation=linear\n[yolo]\nmask=0,1,2\nanchors=1,1,2,2,3,3\nclasses=2\nnum=3\n'
    blocks = parse_cfg_text(text)
    assert [b.type for b in blocks] == ['net', 'convolutional', 'yolo']
    assert blocks[0].get('width') == 64
    assert Darknet(blocks).img_size == (64, 64)


BAD = [
    ('[net]\n[bogus]\nsize=1\n', 2, 'unknown block type'),
    ('[net]\n[convolutional]\nfilters=8\nsizee=3\n', 4, "unknown key 'sizee'"),
    ('[net]\n[convolutional]\nfilters=eight\n', 3, "bad value 'filters=eight'"),
    ('[net]\n[convolutional]\nactivation=wobbly\n', 3, "unknown activation 'wobbly'"),
    ('[net]\n[convolutional]\nxnor=1\n', 3, 'not supported'),
    ('[net]\n[route]\nlayers=-1\n', 3, 'refers to layer -1'),
    ('[net]\n[convolutional]\nfilters=8\n[route]\nlayers=-1, 7\n', 5, 'refers to layer 7'),
    ('[net]\n[convolutional]\nfilters=8\n[shortcut]\nfrom=-5\n', 5, 'refers to layer'),
    ('[net]\n[convolutional]\nfilters=8\nsize=3\ngroups=3\n', 5, 'groups=3 must divide'),
    ('[net]\n[convolutional]\nfilters=20\nsize=1\n[yolo]\nmask=0,1,2\nanchors=1,1,2,2,3,3\n'
     'classes=2\nnum=3\n', 5, 'needs filters=21'),
    ('[net]\n[convolutional]\nfilters=21\nsize=1\n[yolo]\nmask=0,1,5\nanchors=1,1,2,2,3,3\n'
     'classes=2\nnum=3\n', 6, 'mask [0, 1, 5]'),
    ('[net]\nwidth=64\nwidth=32\n', 3, "duplicate key 'width'"),
    ('[convolutional]\nfilters=8\n', 1, 'must start with [net]'),
    ('[net]\nwidth\n', 2, 'expected key=value'),
]


@pytest.mark.parametrize('text,line,message', BAD)
def test_bad_cfg_names_file_and_line(tmp_path, text, line, message):
    path = tmp_path / 'bad.cfg'
    path.write_text(text + ('' if 'yolo' in text else MINI_HEAD))
    with pytest.raises(CfgError) as e:
        Darknet(path)
    assert str(e.value).startswith(f'{path}:{line}:'), str(e.value)
    assert message in str(e.value)


def test_route_of_different_sizes_is_a_cfg_error(tmp_path):
    text = ('[net]\nwidth=64\nheight=64\n[convolutional]\nfilters=4\nsize=3\nstride=2\npad=1\n'
            '[convolutional]\nfilters=4\nsize=3\nstride=2\npad=1\n[route]\nlayers=-1,-2\n')
    path = tmp_path / 'sizes.cfg'
    path.write_text(text + MINI_HEAD)
    with pytest.raises(CfgError, match=rf'{path}:15: \[route\] route joins maps of different'):
        Darknet(path)


@pytest.mark.parametrize('text,line', [('[net]\n[wat]\n', 2), ('[net]\n[maxpool]\nsizes=2\n', 3),
                                       ('[net]\n[route]\nlayers=4\n', 3)])
def test_cli_bad_cfg_one_line_no_traceback(tmp_path, text, line):
    path = tmp_path / 'bad.cfg'
    path.write_text(text + MINI_HEAD)
    r = subprocess.run([sys.executable, '-m', 'models', '--cfg', str(path)], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and 'Traceback' not in r.stderr
    assert lines[0].startswith(f'error: {path}:{line}:')


def test_with_classes_resizes_every_head_for_another_class_count():
    from models.cfg import with_classes
    blocks = parse_cfg(ROOT / 'cfg' / 'yolov3-tiny.cfg')
    model = Darknet(with_classes(blocks, 6))  # builds: filters match anchors x (5 + 6)
    assert model.nc == 6 and len(model.yolo_layers) == 2
    assert all(model.module_list[j - 1].conv.out_channels == 3 * 11 for j in model.yolo_layers)
    assert Darknet(blocks).nc == 80  # the blocks given are left as they were
