import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from data.drawn import generate
from tests.conftest import ROOT
from utils.datasets import (DataError, YoloDataset, cache_bytes, label_path, load_items,
                            parse_data_cfg)

COLORS = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]


def write_item(root, stem, boxes, size=(96, 128)):
    """An image with class-colored rectangles and its YOLO label file; boxes in pixels xyxy."""
    h, w = size
    img = np.zeros((h, w, 3), np.uint8)
    lines = []
    for cls, x1, y1, x2, y2 in boxes:
        img[y1:y2, x1:x2] = COLORS[cls]
        lines.append(f'{cls} {(x1 + x2) / 2 / w} {(y1 + y2) / 2 / h} {(x2 - x1) / w} '
                     f'{(y2 - y1) / h}')
    (root / 'images').mkdir(parents=True, exist_ok=True)
    (root / 'labels').mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(root / 'images' / f'{stem}.png'), img)
    (root / 'labels' / f'{stem}.txt').write_text('\n'.join(lines) + '\n')
    return root / 'images' / f'{stem}.png'


@pytest.fixture
def dirty_set(tmp_path):
    """6 good images (7 objects, one background) and 4 bad ones of different kinds."""
    root = tmp_path / 'set'
    good = [[(0, 10, 10, 50, 40)], [(1, 60, 20, 120, 90), (2, 5, 5, 30, 30)], [],
            [(0, 0, 0, 128, 96)], [(2, 40, 40, 80, 80), (1, 90, 10, 110, 30)], [(0, 3, 50, 33, 90)]]
    for k, boxes in enumerate(good):
        write_item(root, f'good{k}', boxes)
    write_item(root, 'badclass', [(0, 10, 10, 50, 40)])
    (root / 'labels' / 'badclass.txt').write_text('0 0.5 0.5 0.2 0.2\n7 0.5 0.5 0.1 0.1\n')
    write_item(root, 'truncated_label', [(0, 10, 10, 50, 40)])
    (root / 'labels' / 'truncated_label.txt').write_text('0 0.5 0.5 0.2 0.2\n1 0.4 0.3\n')
    write_item(root, 'outside', [(0, 10, 10, 50, 40)])
    (root / 'labels' / 'outside.txt').write_text('1 0.95 0.5 0.3 0.2\n')
    (root / 'images' / 'corrupt.jpg').write_bytes(b'\xff\xd8\xff\xe0' + b'garbage' * 50)
    (root / 'labels' / 'corrupt.txt').write_text('0 0.5 0.5 0.2 0.2\n')
    names = tmp_path / 'set.names'
    names.write_text('a\nb\nc\nd\ne\nf\n')  # six, like yolov3-mini
    data = tmp_path / 'set.data'
    data.write_text(f'classes=6\ntrain=set/images\nvalid=set/images\nnames={names.name}\n')
    return data, root


BAD_FILES = ['badclass.txt:2', 'truncated_label.txt:2', 'outside.txt:1', 'corrupt.jpg']


def test_bad_items_are_skipped_and_named(dirty_set, caplog):
    _, root = dirty_set
    items, summary = load_items(root / 'images', nc=3)
    assert summary['images'] == 6 and summary['labels'] == 7 and summary['backgrounds'] == 1
    assert summary['skipped'] == 4
    skipped = ' '.join(summary['skipped_files'])
    for name in ('badclass', 'truncated_label', 'outside', 'corrupt'):
        assert name in skipped


def test_nothing_is_written_beside_the_images(dirty_set, tmp_path, monkeypatch):
    """Datasets may be shared or read-only (../shared/real): the label cache lives elsewhere."""
    _, root = dirty_set
    monkeypatch.setenv('YOLO_CACHE', str(tmp_path / 'caches'))
    before = sorted(root.rglob("*"))
    load_items(root / 'images', nc=3)
    assert sorted(root.rglob("*")) == before
    assert len(list((tmp_path / 'caches' / 'labels').glob('*.cache'))) == 1


def test_label_cache_is_reused_and_invalidated(dirty_set, capfd):
    _, root = dirty_set
    load_items(root / 'images', nc=3)
    assert 'cache saved' in capfd.readouterr().err
    load_items(root / 'images', nc=3)
    err = capfd.readouterr().err
    assert 'cache loaded' in err
    assert all(err.count(b) == 1 for b in BAD_FILES)  # the warnings come back from the cache
    (root / 'labels' / 'good0.txt').write_text('0 0.5 0.5 0.5 0.5\n1 0.2 0.2 0.1 0.1\n')
    _, summary = load_items(root / 'images', nc=3)
    assert 'checked' in capfd.readouterr().err and summary['labels'] == 8


def test_cached_images_are_what_cache_bytes_predicts(tmp_path):
    root = tmp_path / 'set'
    for k, size in enumerate([(96, 128), (128, 96), (50, 70), (200, 120)]):
        write_item(root, f'im{k}', [(0, 5, 5, 40, 40)], size)
    for img_size in (64, 160):
        ds = YoloDataset(root / 'images', 6, img_size, cache_images=True)
        assert cache_bytes(root / 'images', 6, img_size) == sum(im.nbytes for im, _ in ds.images)
        assert all(max(im.shape[:2]) == img_size for im, _ in ds.images)


def test_label_path_rule():
    assert label_path(Path('/d/images/train/x.jpg')) == Path('/d/labels/train/x.txt')
    assert label_path(Path('/d/imgs/x.png')) == Path('/d/imgs/x.txt')
    assert label_path(Path('/images/a/images/b/x.jpg')) == Path('/images/a/labels/b/x.txt')


def test_data_file_errors(tmp_path):
    (tmp_path / 'n.names').write_text('a\nb\n')
    bad = tmp_path / 'bad.data'
    bad.write_text('classes=3\nnames=n.names\n')
    with pytest.raises(DataError, match=f'{bad}: classes=3 but the names file lists 2'):
        parse_data_cfg(bad)
    bad.write_text('classes=2\n')
    with pytest.raises(DataError, match="missing 'names='"):
        parse_data_cfg(bad)
    with pytest.raises(DataError, match='not found'):
        parse_data_cfg(tmp_path / 'nope.data')


def _boxes_in_pixels(labels, w, h):
    xywh = labels[:, 2:].numpy() * [w, h, w, h]
    xyxy = np.concatenate([xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2], 1)
    return np.clip(xyxy.round().astype(int), 0, [w, h, w, h])


def _check_items(ds, complete, rounds=5):
    """Each returned label sits on its class color; with complete=True every colored pixel is
    inside some box of its class too. Returns the number of boxes checked."""
    checked = 0
    for i in list(range(len(ds))) * rounds:
        img, labels, _, _, _ = ds[i]
        img = img.numpy().transpose(1, 2, 0)[:, :, ::-1]  # back to BGR HWC
        h, w = img.shape[:2]
        boxes, classes = _boxes_in_pixels(labels, w, h), labels[:, 1].long().tolist()
        for cls in set(classes):
            color = np.abs(img.astype(int) - np.array(COLORS[cls])).sum(2) < 120
            union = np.zeros_like(color)
            for (x1, y1, x2, y2), c in zip(boxes, classes):
                if c == cls:
                    assert color[y1:y2, x1:x2].mean() > 0.9  # the box is its object
                    union[y1:y2, x1:x2] = True
                    checked += 1
            if complete:
                assert (color & ~union).sum() <= 0.02 * color.sum()
    return checked


def test_augmented_items_keep_boxes_on_their_pixels(tmp_path):
    """Through the whole dataset path (mosaic, affine, flips, normalization) labels stay on their
    pixels. Mosaic and affine cuts drop objects left with under 20% of their area, so completeness
    is checked where nothing is cut: letterbox and flips."""
    root = tmp_path / 'aug'
    for k in range(4):
        write_item(root, f'i{k}', [(k % 3, 10 + 5 * k, 20, 60 + 5 * k, 70)], size=(100, 140))
    no_color = {'hsv_h': 0, 'hsv_s': 0, 'hsv_v': 0, 'flipud': 0.5}
    full = YoloDataset(root / 'images', nc=3, img_size=160, augment=True, seed=0,
                       hyp={**no_color, 'degrees': 0, 'shear': 0})
    assert _check_items(full, complete=False) > 10
    uncut = YoloDataset(root / 'images', nc=3, img_size=160, augment=True, seed=0,
                        hyp={**no_color, 'mosaic': 0, 'translate': 0, 'scale': 0})
    assert _check_items(uncut, complete=True) == 4 * 5


def test_make_shapes_is_deterministic(tmp_path):
    generate(tmp_path / 'a', n_train=12, n_val=4, workers=2, verbose=False)
    generate(tmp_path / 'b', n_train=12, n_val=4, workers=1, verbose=False)
    for split in ('train', 'val'):
        for f in sorted((tmp_path / 'a' / 'labels' / split).glob('*.txt')):
            assert f.read_bytes() == (tmp_path / 'b' / 'labels' / split / f.name).read_bytes()
    r = subprocess.run([sys.executable, 'data/make_shapes.py', '--out', str(tmp_path / 'c'),
                        '--n-train', '4', '--n-val', '2'], cwd=ROOT, capture_output=True,
                       text=True)
    assert r.returncode == 0 and 'generated in' in r.stdout


def test_test_py_survives_a_dirty_folder(dirty_set, tmp_path):
    data, _ = dirty_set
    r = subprocess.run([sys.executable, 'test.py', '--cfg', 'cfg/yolov3-mini.cfg', '--data',
                        str(data), '--img-size', '128', '--project', str(tmp_path / 'runs'),
                        '--workers', '0'], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    for bad in BAD_FILES:
        assert r.stderr.count(bad) == 1, (bad, r.stderr)
    metrics = json.loads((tmp_path / 'runs' / 'exp' / 'metrics.json').read_text())
    assert metrics['images'] == 6 and metrics['targets'] == 7
    for key in ('precision', 'recall', 'f1', 'map50', 'map50_95', 'per_class', 'speed_ms'):
        assert key in metrics


def test_study_task_sweeps_sizes(dirty_set, tmp_path):
    import test as evaluator
    data, _ = dirty_set
    rows = evaluator.run(data=str(data), cfg=str(ROOT / 'cfg' / 'yolov3-mini.cfg'), img_size=64,
                         task='study', project=str(tmp_path), workers=0)
    assert [r['img_size'] for r in rows] == [64, 96]
    assert (tmp_path / 'exp' / 'study.json').exists() and (tmp_path / 'exp' / 'study.png').exists()


class _BoxModel(torch.nn.Module):
    """Predicts one fixed box (xywh pixels of the input) for every image, class 0."""

    nc = 6

    def __init__(self, xywh):
        super().__init__()
        self.xywh = torch.tensor(xywh, dtype=torch.float32)
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        row = torch.cat((self.xywh, torch.tensor([0.9, 1.0, 0, 0, 0, 0, 0])))
        return row.expand(x.shape[0], 1, 11), []


def test_detections_are_clipped_to_the_image_before_scoring(tmp_path):
    """A box reaching past the right border matches a border object perfectly once clipped, as
    COCOeval sees it in the JSON (unclipped IoU would be 28/40 = 0.7)."""
    from utils.datasets import create_dataloader
    from utils.evaluate import evaluate_model
    write_item(tmp_path / 'border', 'b0', [(0, 100, 40, 128, 80)], size=(128, 128))
    loader, _ = create_dataloader(tmp_path / 'border' / 'images', 6, 128, 1, workers=0)
    m = evaluate_model(_BoxModel([120, 60, 40, 40]), loader, list('abcdef'), verbose=False)
    assert m['map50_95'] == pytest.approx(1.0)
    assert {'inference', 'nms', 'metrics', 'total'} <= set(m['speed_ms'])  # scoring is timed


def test_loader_workers_default_to_the_cores_a_rank_has(monkeypatch):
    from utils.datasets import default_workers
    monkeypatch.setattr('os.sched_getaffinity', lambda pid: set(range(16)))
    assert default_workers(cuda=True) == 12  # capped
    assert default_workers(cuda=True, world=4) == 3  # 4 cores per rank, one for the rank
    assert default_workers(cuda=False) == 4  # the step's threads take the rest
    monkeypatch.setattr('os.sched_getaffinity', lambda pid: {0, 1})
    assert default_workers(cuda=False) == default_workers(cuda=True) == 1


def test_evaluation_takes_the_machines_default_workers():
    """test.py and evaluate_on leave the loader workers to default_workers (on 2 cores two
    workers beside the model's threads slowed evaluation, docs/results/evaluation.md)."""
    import inspect

    import test as evaluation
    from utils import evaluate
    assert evaluation.parse_opt([]).workers is None
    assert evaluation.TestOptions().workers is None
    assert inspect.signature(evaluate.evaluate_on).parameters['workers'].default is None


def test_hard_shapes_are_deterministic_and_consistent(tmp_path):
    """Same seed, same bytes (images, labels, masks) whatever the workers; labels and masks
    agree; the names files list the generator's classes."""
    from data.drawn.hard import CLASSES
    generate(tmp_path / 'a', n_train=10, n_val=2, workers=2, verbose=False, hard=True)
    generate(tmp_path / 'b', n_train=10, n_val=2, workers=1, verbose=False, hard=True)
    files = sorted(p.relative_to(tmp_path / 'a') for p in (tmp_path / 'a').rglob('*.*'))
    assert len(files) == 3 * 12 + 2
    for f in files:
        assert (tmp_path / 'a' / f).read_bytes() == (tmp_path / 'b' / f).read_bytes(), f
    assert (ROOT / 'data' / 'shapes-hard.names').read_text().split() == list(CLASSES)
    seen = 0
    for label in (tmp_path / 'a' / 'labels' / 'train').glob('*.txt'):
        rows = np.loadtxt(label, ndmin=2).reshape(-1, 5)
        mask = cv2.imread(str(label.parent.parent.parent / 'masks' / 'train' /
                              f'{label.stem}.png'), cv2.IMREAD_UNCHANGED)
        assert set(np.unique(mask)) - {0} <= {int(c) + 1 for c in rows[:, 0]}
        assert ((rows[:, 3:] * 320).max(1) >= 3).all() and (rows[:, 3:] <= 1).all()
        seen += len(rows)
    assert seen > 30  # 2 to 18 objects an image


def test_the_hard_dataset_data_files_name_24_classes():
    for name, seg in (('shapes-hard.data', 0), ('shapes-hard-seg.data', 25)):
        cfg = parse_data_cfg(ROOT / 'data' / name, generate=False)
        assert cfg['classes'] == 24 and cfg['seg_classes'] == seg


@pytest.mark.parametrize('name,hard', [('shapes.data', False), ('shapes-hard-seg.data', True)])
def test_a_builtin_data_file_generates_its_own_set(monkeypatch, tmp_path, name, hard):
    """A missing built-in set is generated once, the hard one for the hard .data files; other
    .data files never trigger it."""
    import data.drawn
    from utils import data_cfg, datasets
    calls = []
    monkeypatch.setattr(data.drawn, 'generate', lambda out, hard=False: calls.append(
        (Path(out).name, hard)))
    cfg = datasets.parse_data_cfg(ROOT / 'data' / name, generate=False)
    cfg |= {'train': str(tmp_path / 'missing' / 'train.txt'), 'valid': cfg['train']}
    data_cfg._generate_builtin_if_missing(ROOT / 'data' / name, cfg)
    assert calls == [('missing', hard)]
    (tmp_path / 'mine.data').write_text('')
    data_cfg._generate_builtin_if_missing(tmp_path / 'mine.data', cfg)
    assert len(calls) == 1


def test_a_glob_through_links_to_dot_and_dotdot_ends_and_lists_each_image_once(tmp_path):
    """glob.glob('**') follows such links round and round (detect.py hung on it)."""
    import os
    import signal
    from utils.datasets import image_files
    root = tmp_path / 'a'
    root.mkdir()
    cv2.imwrite(str(root / 'x.jpg'), np.zeros((8, 8, 3), np.uint8))
    os.symlink('.', root / 'self')
    os.symlink('..', root / 'up')
    (root / 'sub').mkdir()
    os.symlink('../x.jpg', root / 'sub' / 'same.jpg')  # another path to the same file
    signal.alarm(20)
    try:
        found = image_files(f'{root}/**/*.jpg')
    finally:
        signal.alarm(0)
    assert found == [root / 'x.jpg'] or found == [root / 'sub' / 'same.jpg']


def test_photos_are_read_as_stored_whatever_their_exif_orientation(tmp_path):
    """Labels (YOLO's, COCO's) and darknet take a photo's pixels as stored; OpenCV's default
    read turns them by the EXIF tag, which left boxes on the wrong pixels."""
    from PIL import Image
    from utils.datasets import load_image, read_image
    a = np.zeros((40, 80, 3), np.uint8)
    im = Image.fromarray(a)
    exif = im.getexif()
    exif[0x0112] = 6  # "turn 90 degrees to display"
    im.save(tmp_path / 'turned.jpg', exif=exif)
    assert read_image(tmp_path / 'turned.jpg').shape == (40, 80, 3)
    assert load_image(tmp_path / 'turned.jpg', 80)[1] == (40, 80)


def test_masks_as_palettes_and_16_bit_hold_their_classes(tmp_path):
    from PIL import Image
    from utils.datasets import read_mask
    classes = (np.arange(64).reshape(8, 8) % 5).astype(np.uint8)
    palette = Image.fromarray(classes, 'P')
    palette.putpalette([v for c in range(256) for v in (c * 7 % 256, c * 3 % 256, 0)])
    palette.save(tmp_path / 'palette.png')  # VOC's way: colours on screen, indices in the file
    Image.fromarray(classes.astype(np.uint16)).save(tmp_path / 'wide.png')
    assert np.array_equal(read_mask(tmp_path / 'palette.png'), classes)
    assert np.array_equal(read_mask(tmp_path / 'wide.png'), classes)
    Image.fromarray(classes.astype(np.uint16) * 100).save(tmp_path / 'big.png')
    Image.fromarray(np.stack([classes] * 3, -1)).save(tmp_path / 'rgb.png')
    with pytest.raises(ValueError, match=r'big\.png: uint16 values up to 400'):
        read_mask(tmp_path / 'big.png')
    with pytest.raises(ValueError, match=r'rgb\.png: a RGB image'):
        read_mask(tmp_path / 'rgb.png')
