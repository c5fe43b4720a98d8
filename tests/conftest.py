"""Shared fixtures: every shipped cfg, models with realistic (random) BN statistics."""
import functools
import os
import tempfile
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
# the *-hard cfgs are their base networks with other classes and anchors: nothing new to test
CFGS = sorted(p.stem for p in (ROOT / 'cfg').glob('*.cfg') if not p.stem.endswith('-hard'))

# label caches of the tests' datasets stay out of the user's ~/.cache (commands run by the tests
# inherit it)
os.environ.setdefault('YOLO_CACHE', tempfile.mkdtemp(prefix='yolo-cache-'))

if os.environ.get('PYTEST_XDIST_WORKER'):  # one thread per worker: workers share the cores
    torch.set_num_threads(1)

# The files that take longest (their summed test times, largest first). Under `-n 2 --dist
# loadfile` each worker takes the next file when it is free, so starting with these lets the two
# workers finish together instead of one of them running a long file alone at the end.
LONGEST_FIRST = ('test_train.py', 'test_compress.py', 'test_export_c.py', 'test_export.py',
                 'test_qdq.py', 'test_sparsity.py', 'test_prune.py', 'test_prune_scripts.py',
                 'test_sparse24.py', 'test_kills.py', 'test_bad_inputs.py')


def pytest_collection_modifyitems(items):
    rank = {name: k for k, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: files stay whole


def randomize_bn(model, seed=0):
    """Fresh BN layers are identities; give them statistics so that tests can see mistakes."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.rand(n, generator=g) * 0.2 - 0.1)
                m.running_mean.copy_(torch.rand(n, generator=g) * 0.2 - 0.1)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
    return model


@functools.cache
def _built(name):
    from models import Darknet
    torch.manual_seed(0)
    return randomize_bn(Darknet(ROOT / 'cfg' / f'{name}.cfg')).eval()


@pytest.fixture
def built():
    """built(name) -> a shared eval-mode model of cfg/<name>.cfg; do not modify it."""
    return _built


def cfg_path(name):
    return ROOT / 'cfg' / f'{name}.cfg'


@pytest.fixture(scope='session')
def tiny_data(tmp_path_factory):
    """A 32 + 8 image, 128 px shapes dataset shared by the training and pruning tests."""
    from data.drawn import generate
    root = tmp_path_factory.mktemp('tiny')
    generate(root / 'shapes', n_train=32, n_val=8, img_size=128, verbose=False)
    data = root / 'tiny.data'
    data.write_text(f'classes=6\ntrain=shapes/train.txt\nvalid=shapes/val.txt\n'
                    f'names={ROOT / "data" / "shapes.names"}\n')
    return data


@pytest.fixture(scope='session')
def ws(tmp_path_factory, tiny_data):
    """The bad-input suite's workspace of broken files beside good ones; {name: path}."""
    from tests.bad_input import workspace
    return workspace(tmp_path_factory.mktemp('bad'), tiny_data)


REAL = ROOT.parent / 'shared' / 'real'
needs_real = pytest.mark.skipif(not REAL.is_dir(),
                                reason=f'{REAL} (the real weights and photos) is absent')


@pytest.fixture(scope='session')
def real(tmp_path_factory):
    """The real files fetched as a user fetches them (python3 -m data.fetch --from ../shared/real)
    into a temporary root: {'root', 'coco16' (a .data of the first 16 val2017 photos), ...}."""
    from data import fetch
    root = tmp_path_factory.mktemp('real')
    for name in ('coco128', 'yolov3-tiny', 'yolo-fastest-1.1'):
        fetch.fetch(name, REAL, root=root)
    val = sorted((root / 'datasets/coco128/images/val2017').glob('*.jpg'))
    (root / 'val16.txt').write_text(''.join(f'{p}\n' for p in val[:16]))
    data = root / 'coco16.data'
    data.write_text(f'classes=80\ntrain={root}/datasets/coco128/images/train2017\n'
                    f'valid={root}/val16.txt\nnames={ROOT / "data" / "coco.names"}\n')
    return {'root': root, 'coco16': data, 'weights': root / 'weights'}
