"""Datasets in the darknet/YOLO layout: .data and .names files, image lists, YOLO txt labels.

- A ``.data`` file has ``classes=``, ``train=``, ``valid=``, ``names=``; paths are relative to the
  .data file (or absolute). ``train``/``valid`` name an image list (one path per line, relative to
  the list file), a folder, or a glob.
- The label of ``.../images/x.jpg`` (or ``.../JPEGImages/x.jpg``) is ``.../labels/x.txt``, else
  ``x.txt`` beside the image:
  ``class cx cy w h`` per line, normalized. An empty or missing label file is a background image.
- Segmentation (``seg_classes=`` and ``seg_names=`` in the .data): the mask of
  ``.../images/x.jpg`` is ``.../masks/x.png`` (the last ``images`` folder becomes ``masks``, as
  for labels), else lightNet's sibling ``x-label.png``: one channel, the class index per pixel,
  255 = not scored.
- Every image, label and mask is checked once and the result cached (under ``cache_root()``,
  never beside the data; keyed by file sizes and modification times). A corrupt image, a
  malformed line, a class out of range, a box outside the image, or a mask that is missing,
  unreadable, of another size or with a class out of range skips that image with one warning
  naming the file (and line); the run goes on.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from utils.augment import (IGNORE, affine_matrix, augment_hsv, flip, flip_mask, letterbox,
                           letterbox_mask, mosaic, resize_mask, warp, warp_mask)
from utils.boxes import xywh2xyxy, xyxy2xywh
from utils.errors import ToolkitError
from utils.files import atomic_write_text, glob_files
from utils.log import LOGGER

IMG_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')
CACHE_VERSION = 2
BOX_TOLERANCE = 0.01  # normalized coordinates may overshoot [0, 1] by this much (rounding)
DEFAULT_HYP = {'hsv_h': 0.015, 'hsv_s': 0.7, 'hsv_v': 0.4, 'degrees': 0.0, 'translate': 0.1,
               'scale': 0.5, 'shear': 0.0, 'flipud': 0.0, 'fliplr': 0.5, 'mosaic': 1.0}


class DataError(ToolkitError, ValueError):
    """A dataset problem that stops the run; the message names the file."""


def load_names(path) -> list[str]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f'{path}: names file not found')
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


class DataCfg(dict):
    """A .data file's entries; an entry a step needs and the file lacks is a DataError naming
    both (train.py needs train=, test.py valid=, ...), not a KeyError."""

    def __init__(self, source):
        super().__init__()
        self.source = source

    def __missing__(self, key):
        raise DataError(f"{self.source}: no '{key}=' entry, which this step needs")


def parse_data_cfg(path, generate=True) -> dict:
    """Read a .data file; paths come back absolute. Generates the built-in dataset on first use
    (unless ``generate`` is False: a caller that needs only the class names)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f'{path}: .data file not found')
    data = DataCfg(path)
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        text = '\0'
    if '\0' in text:
        raise DataError(f'{path}: not a text file (a .data file is key=value lines)')
    for n, line in enumerate(text.splitlines(), 1):
        line = line.split('#', 1)[0].strip()
        if not line:
            continue
        if '=' not in line:
            raise DataError(f'{path}:{n}: expected key=value, got {line!r}')
        key, value = (s.strip() for s in line.split('=', 1))
        data[key] = value
    for key in ('classes', 'names'):
        if key not in data:
            raise DataError(f"{path}: missing '{key}='")
    for key in ('train', 'valid', 'test', 'names', 'seg_names'):
        if key in data and not os.path.isabs(data[key]):
            data[key] = str((path.parent / data[key]).resolve())
    for key in ('classes', 'seg_classes'):
        try:
            data[key] = int(data.get(key, 0))
        except ValueError:
            raise DataError(f'{path}: {key}={data[key]} is not an integer') from None
    for count, names in (('classes', 'names'), ('seg_classes', 'seg_names')):
        if data[count] < 0:
            raise DataError(f'{path}: {count}={data[count]} must be 0 or more')
        if not data[count] and count == 'seg_classes':
            if names in data:  # a zero left in while the names say how many
                raise DataError(f'{path}: seg_classes=0 beside seg_names=: give the number of '
                                'segmentation classes, or drop seg_names=')
            continue
        if names not in data:
            raise DataError(f"{path}: {count}={data[count]} needs '{names}='")
        data[names] = load_names(data[names])
        if len(data[names]) != data[count]:
            raise DataError(f'{path}: {count}={data[count]} but the names file lists '
                            f'{len(data[names])} names')
    if generate:
        _generate_builtin_if_missing(path, data)
    _check_fetched(path, data)
    return data


def _check_fetched(path, data):
    """A .data file with ``fetch=NAME`` names a set that data.fetch places: say how to get it."""
    name = data.get('fetch')
    for key in ('train', 'valid', 'test'):
        if name and key in data and not Path(data[key]).exists():
            raise DataError(f'{path}: {key}={data[key]} not found: fetch it with '
                            f'python3 -m data.fetch {name} (offline: add --from DIR, a folder '
                            f'laid out like ../shared/real)')


BUILTIN = {'shapes.data': False, 'shapes-seg.data': False,  # .data file -> the hard set?
           'shapes-hard.data': True, 'shapes-hard-seg.data': True}


def _generate_builtin_if_missing(path, data):
    here = Path(__file__).resolve().parents[1] / 'data'
    path = path.resolve()
    if path.parent != here or path.name not in BUILTIN:
        return
    folder = Path(data['train']).parent
    if not all(Path(data[k]).exists() for k in ('train', 'valid')) or \
            not (folder / 'masks').is_dir():
        from data.make_shapes import generate  # noqa: PLC0415 (only for the built-in dataset)
        hard = BUILTIN[path.name]
        LOGGER.info(f'built-in {"hard " if hard else ""}dataset not found: generating it once '
                    f'(under a minute)')
        generate(folder, hard=hard)


def image_files(source) -> list[Path]:
    """Images named by a list file, a folder (recursively) or a glob, in a stable order; or by
    several of them (a list or tuple), one after the other."""
    if isinstance(source, (list, tuple)):
        return [f for s in source for f in image_files(s)]
    source = Path(source)
    if source.is_dir():
        return sorted(p for p in source.rglob('*') if p.suffix.lower() in IMG_SUFFIXES)
    if source.is_file() and source.suffix == '.txt':
        files = []
        for line in source.read_text().splitlines():
            line = line.strip()
            if line:
                p = Path(line)
                files.append(p if p.is_absolute() else source.parent / p)
        return files
    if source.is_file():
        return [source]
    matches = glob_files(source)
    files = [p for p in matches if p.suffix.lower() in IMG_SUFFIXES]
    if not files:
        raise DataError(f'{source}: no images found (expected a list .txt, a folder or a glob)')
    return files


def label_path(img: Path) -> Path:
    """darknet's rule: the last 'images' (or VOC's 'JPEGImages') folder becomes 'labels'."""
    parts = list(img.parts)
    for k in range(len(parts) - 2, -1, -1):
        if parts[k] in ('images', 'JPEGImages'):
            parts[k] = 'labels'
            break
    return Path(*parts).with_suffix('.txt')


def mask_path(img: Path) -> Path:
    """The segmentation mask of an image: images/ -> masks/ (.png), else lightNet's sibling
    ``<stem>-label.png``."""
    parts = list(img.parts)
    for k in range(len(parts) - 2, -1, -1):
        if parts[k] in ('images', 'JPEGImages'):
            parts[k] = 'masks'
            beside = Path(*parts).with_suffix('.png')
            if beside.exists():
                return beside
            break
    return img.with_name(f'{img.stem}-label.png')


def read_mask(path):
    """A mask's class indices as uint8 (h, w): a one-channel 8-bit image, a palette PNG's
    indices (VOC's masks), or a 16-bit one whose classes fit 8 bits; ValueError (naming the
    file) for anything else: colour-coded masks are colours, not classes."""
    try:
        with Image.open(path) as im:
            mode = im.mode
            mask = np.array(im)
    except FileNotFoundError:
        raise ValueError(f'{path}: mask not found') from None
    except Exception as e:  # PIL raises many types for broken files
        raise ValueError(f'{path}: not a readable mask ({type(e).__name__})') from None
    if mask.ndim != 2:
        raise ValueError(f'{path}: a {mode} image; a mask holds one class index per pixel '
                         '(one channel, or a palette)')
    if mask.dtype != np.uint8:
        if not np.issubdtype(mask.dtype, np.integer) or mask.min() < 0 or mask.max() > 255:
            raise ValueError(f'{path}: {mask.dtype} values up to {mask.max()} do not fit the '
                             '8-bit class indices a mask holds')
        mask = mask.astype(np.uint8)
    return mask


def _check_mask(path: Path, shape_hw, seg_nc):
    """Raise ValueError unless ``path`` is a readable class map of the image's size."""
    mask = read_mask(path)
    if mask.shape != tuple(shape_hw):
        raise ValueError(f'{path}: mask is {mask.shape[1]}x{mask.shape[0]}, its image '
                         f'{shape_hw[1]}x{shape_hw[0]}')
    bad = (mask >= seg_nc) & (mask != IGNORE)
    if bad.any():
        raise ValueError(f'{path}: class {int(mask[bad].max())} out of range 0..{seg_nc - 1} '
                         f'(255 = not scored)')


MAX_ASPECT = 64  # a 320 px letterbox keeps such an image at least 5 pixels thick


def thin_image_problem(h, w):
    """Why an image of h x w pixels is too thin to letterbox, or None."""
    if min(h, w) < 2 or max(h, w) > MAX_ASPECT * min(h, w):
        return (f'image of {w}x{h} pixels: too thin to resize (at most {MAX_ASPECT}:1 and 2 '
                'pixels a side)')
    return None


def _check_image(img: Path):
    """(height, width) of a readable image, or raise ValueError with the reason."""
    try:
        with Image.open(img) as im:
            im.verify()
        with Image.open(img) as im:
            w, h = im.size
    except FileNotFoundError:
        raise ValueError('image file not found') from None
    except Exception as e:  # PIL raises many types for broken files
        raise ValueError(f'corrupt image ({type(e).__name__})') from None
    if img.suffix.lower() in ('.jpg', '.jpeg'):
        with open(img, 'rb') as f:
            f.seek(-2, 2)
            if f.read() != b'\xff\xd9':
                raise ValueError('corrupt image (truncated JPEG)')
    problem = thin_image_problem(h, w)
    if problem:
        raise ValueError(problem)
    return h, w


def _parse_label(path: Path, nc: int) -> np.ndarray:
    """(n, 5) class, cx, cy, w, h; raise ValueError('path:line: reason') on any bad line."""
    if not path.exists():
        return np.zeros((0, 5), np.float32)  # no label file: an image without objects
    if not path.is_file():
        raise ValueError(f'{path}: a label path that is not a file')
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        where = f'{path}:{n}'
        try:
            values = [float(v) for v in fields]
        except ValueError:
            raise ValueError(f'{where}: malformed label line {line.strip()!r}') from None
        if len(values) != 5:
            raise ValueError(f'{where}: expected 5 values (class cx cy w h), got {len(values)}')
        if not np.isfinite(values).all():
            raise ValueError(f'{where}: non-finite value in {line.strip()!r}')
        cls, cx, cy, w, h = values
        if cls != int(cls) or not 0 <= cls < nc:
            raise ValueError(f'{where}: class {fields[0]} out of range 0..{nc - 1}')
        t = BOX_TOLERANCE
        if (w <= 0 or h <= 0 or cx - w / 2 < -t or cy - h / 2 < -t or cx + w / 2 > 1 + t
                or cy + h / 2 > 1 + t):
            raise ValueError(f'{where}: box outside the image ({line.strip()})')
        rows.append(values)
    labels = np.array(rows, np.float32).reshape(-1, 5)
    xyxy = xywh2xyxy(labels[:, 1:]).clip(0, 1)  # absorb the tolerated rounding
    labels[:, 1:] = xyxy2xywh(xyxy)
    return labels


def _fingerprint(files, seg_nc=0) -> str:
    h = hashlib.sha1()
    for f in files:
        for p in (f, label_path(f)) + ((mask_path(f),) if seg_nc else ()):
            try:
                st = p.stat()
                h.update(f'{p}:{st.st_size}:{st.st_mtime_ns};'.encode())
            except OSError:
                h.update(f'{p}:-;'.encode())
    return h.hexdigest()


def _verify_all(files, nc, seg_nc=0):
    items, bad = [], []
    for f in files:
        try:
            shape = _check_image(f)
            labels = _parse_label(label_path(f), nc)
            if seg_nc:
                _check_mask(mask_path(f), shape, seg_nc)
        except ValueError as e:
            msg = str(e)
            bad.append([str(f), msg if msg.startswith(str(label_path(f))) else f'{f}: {msg}'])
            continue
        items.append([str(f), list(shape), labels.tolist()])
    return items, bad


def cache_root() -> Path:
    """Where label caches live: $YOLO_CACHE, else ~/.cache/yolo-compress (or $XDG_CACHE_HOME's).
    Never beside the images: datasets are often read-only or shared (../shared/real)."""
    root = os.environ.get('YOLO_CACHE')
    if root:
        return Path(root)
    xdg = os.environ.get('XDG_CACHE_HOME')
    return (Path(xdg) if xdg else Path.home() / '.cache') / 'yolo-compress'


def cache_path_for(source) -> Path:
    """The label cache of a list file or folder (or several): named after the first, keyed by
    their absolute paths."""
    sources = [Path(s).resolve() for s in (source if isinstance(source, (list, tuple))
                                           else [source])]
    digest = hashlib.sha1('\n'.join(map(str, sources)).encode()).hexdigest()[:12]
    return cache_root() / 'labels' / f'{sources[0].stem or "root"}-{digest}.cache'


def load_items(source, nc, prefix='', seg_nc=0):
    """Verified (path, (h, w), labels) items of a source, through the cache; warns per bad file.
    With ``seg_nc`` every image's mask is checked too."""
    files = image_files(source)
    if not files:
        raise DataError(f'{source}: lists no images')
    # a list file or a folder gets a cache beside it; one image (or a glob) is checked each time
    sources = source if isinstance(source, (list, tuple)) else [source]
    single = len(sources) == 1 and Path(sources[0]).suffix.lower() in IMG_SUFFIXES
    exist = all(Path(s).exists() for s in sources)
    cache_file = cache_path_for(source) if exist and not single else None
    key = f'{CACHE_VERSION}:{nc}:{seg_nc}:{_fingerprint(files, seg_nc)}'
    cached = None
    if cache_file and cache_file.is_file():
        try:
            cached = json.loads(cache_file.read_text())
        except (OSError, json.JSONDecodeError):
            cached = None
    if cached and cached.get('key') == key:
        items, bad, how = cached['items'], cached['bad'], 'cache loaded'
    else:
        items, bad = _verify_all(files, nc, seg_nc)
        how = 'checked'
        if cache_file:
            try:
                cache_file.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_text(cache_file, json.dumps({'key': key, 'items': items, 'bad': bad}))
                how += ', cache saved'
            except OSError as e:
                how += f', cache not writable ({e.strerror})'
    for _, msg in bad:
        LOGGER.warning(f'WARNING: skipped {msg}')
    n_labels = sum(len(it[2]) for it in items)
    backgrounds = sum(1 for it in items if not it[2])
    LOGGER.info(f'{prefix}{source}: {len(items)} images, {n_labels} labels, {backgrounds} '
                f'backgrounds, {len(bad)} skipped ({how})')
    if not items:
        raise DataError(f'{source}: no usable images ({len(bad)} skipped)')
    summary = {'images': len(items), 'labels': n_labels, 'backgrounds': backgrounds,
               'skipped': len(bad), 'skipped_files': [b[0] for b in bad]}
    return items, summary


def load_mask(path, shape_hw):
    """A class map resized (nearest) to an image of shape (h, w)."""
    try:
        mask = read_mask(path)
    except ValueError as e:
        raise DataError(str(e)) from None
    return resize_mask(mask, shape_hw)


# as stored, not turned by an EXIF orientation tag: labels (YOLO's, COCO's) and darknet's own
# reader (stb_image) take the pixels as stored; OpenCV would turn them
READ_FLAGS = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION


def read_image(path):
    """A BGR image as stored in the file (no EXIF rotation), or None when unreadable."""
    return cv2.imread(str(path), READ_FLAGS)


def load_image(path, img_size):
    """BGR image resized so that its longer side is img_size; also (h0, w0)."""
    img = read_image(path)
    if img is None:
        raise DataError(f'{path}: cannot be read as an image')
    h0, w0 = img.shape[:2]
    r = img_size / max(h0, w0)
    if r != 1:
        interp = cv2.INTER_AREA if r < 1 else cv2.INTER_LINEAR
        img = cv2.resize(img, (round(w0 * r), round(h0 * r)), interpolation=interp)
    return img, (h0, w0)


def cache_bytes(source, nc, img_size):
    """RAM that --cache-images takes for a source: its images resized as load_image does."""
    shapes = np.array([it[1] for it in load_items(source, nc)[0]], np.float64)
    r = img_size / shapes.max(1)
    return int((np.round(shapes[:, 0] * r) * np.round(shapes[:, 1] * r) * 3).sum())


def available_memory():
    """Bytes the kernel says a new allocation can take (MemAvailable), or None if unknown."""
    try:
        for line in Path('/proc/meminfo').read_text().splitlines():
            if line.startswith('MemAvailable:'):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def default_workers(cuda, world=1):
    """Loader processes per rank: on a GPU nearly every core this rank has (the step runs on the
    device), capped; on a CPU a quarter of them, since the step's threads want the rest
    (docs/results/training-speed.md)."""
    per_rank = max(1, len(os.sched_getaffinity(0)) // world)
    return max(1, min(per_rank - 1, 12)) if cuda else max(1, per_rank // 4)


def fits_in_ram(source, nc, img_size, share=0.25):
    """Whether a source's decoded images take under ``share`` of the free memory: then a CPU
    epoch decodes no JPEG beside the model's threads (docs/results/compress.md)."""
    free = available_memory()
    return free is not None and cache_bytes(source, nc, img_size) < free * share


class YoloDataset(torch.utils.data.Dataset):
    """Items: (image uint8 tensor (3, H, W) RGB, labels (n, 6) = [0, class, cx, cy, w, h]
    normalized to the returned image, path, (original (h, w), (ratio, (pad_x, pad_y))), mask
    uint8 tensor (H, W) of class indices (IGNORE where nothing is scored), or None without
    ``seg_nc``)."""

    def __init__(self, source, nc, img_size=320, batch_size=16, augment=False, hyp=None,
                 rect=False, stride=32, cache_images=False, prefix='', seed=None, seg_nc=0,
                 stretch=False):
        self.img_size, self.augment, self.rect, self.stride = img_size, augment, rect, stride
        # stretch: each image resized to the square input whatever its aspect (darknet's resize
        # unless the cfg says letter_box=1); evaluation only
        self.stretch = stretch and not augment
        self.seed, self.draws = seed, 0  # seed: reproducible augmentation (tests, debugging)
        self.seg_nc = seg_nc
        self.hyp = {**DEFAULT_HYP, **(hyp or {})}
        items, self.summary = load_items(source, nc, prefix, seg_nc)
        self.files = [Path(it[0]) for it in items]
        self.shapes = np.array([it[1] for it in items], np.float64)  # (h, w)
        self.labels = [np.array(it[2], np.float32).reshape(-1, 5) for it in items]
        self.batch_shapes = self._rect_shapes(batch_size) if rect else None
        self.images = [None] * len(self.files)
        if cache_images:  # threads: cv2 decodes without the GIL
            with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
                self.images = list(pool.map(lambda f: load_image(f, img_size), self.files))
            if prefix:
                size = sum(im[0].nbytes for im in self.images) / 1e9
                LOGGER.info(f'{prefix}{len(self.images)} decoded images held in RAM ({size:.2f} '
                            'GB)')

    def _rect_shapes(self, batch_size):
        """Sort by aspect ratio; each batch gets the smallest stride-multiple shape that fits."""
        aspect = self.shapes[:, 0] / self.shapes[:, 1]
        order = aspect.argsort()
        self.files = [self.files[i] for i in order]
        self.labels = [self.labels[i] for i in order]
        self.shapes, aspect = self.shapes[order], aspect[order]
        n_batches = math.ceil(len(order) / batch_size)
        shapes = []
        for b in range(n_batches):
            a = aspect[b * batch_size:(b + 1) * batch_size]
            hw = [1.0, 1.0]
            if a.max() < 1:
                hw = [a.max(), 1.0]
            elif a.min() > 1:
                hw = [1.0, 1 / a.min()]
            shapes.append(np.ceil(np.array(hw) * self.img_size / self.stride) * self.stride)
        return [tuple(int(v) for v in shapes[i // batch_size]) for i in range(len(order))]

    def __len__(self):
        return len(self.files)

    def _load(self, i):
        return self.images[i] if self.images[i] is not None else load_image(self.files[i],
                                                                            self.img_size)

    def _load_mask(self, i, shape_hw):
        return load_mask(mask_path(self.files[i]), shape_hw) if self.seg_nc else None

    def _pixel_boxes(self, i, img_shape, ratio=1.0, pad=(0, 0)):
        """Labels of item i as (n, 5) class, x1, y1, x2, y2 in pixels of a resized image."""
        labels = self.labels[i]
        boxes = labels.copy()
        if len(labels):
            h, w = img_shape[:2]
            xyxy = xywh2xyxy(labels[:, 1:]) * np.array([w, h, w, h]) * ratio
            boxes[:, 1:] = xyxy + np.array([pad[0], pad[1], pad[0], pad[1]])
        return boxes

    def _affine(self, img, boxes, mask, shape_out, rng):
        """The random affine of the hyp, the same matrix on image, boxes and mask."""
        h = self.hyp
        shape_out = shape_out or img.shape[:2]
        m = affine_matrix(img.shape[:2], shape_out, h['degrees'], h['translate'], h['scale'],
                          h['shear'], rng)
        img, boxes = warp(img, boxes, m, shape_out)
        return img, boxes, None if mask is None else warp_mask(mask, m, shape_out)

    def _mosaic(self, i, rng):
        idx = [i] + list(rng.integers(0, len(self), 3))
        images, boxes, masks = [], [], []
        for k in idx:
            img, _ = self._load(k)
            images.append(img)
            boxes.append(self._pixel_boxes(k, img.shape))
            masks.append(self._load_mask(k, img.shape[:2]))
        canvas, merged, mask = mosaic(images, boxes, self.img_size, rng,
                                      masks if self.seg_nc else None)
        return self._affine(canvas, merged, mask, (self.img_size, self.img_size), rng)

    def _stretched(self, i):
        """The original image resized to the square input (bilinear, as OpenCV's darknet reader
        does), its boxes and mask with it; the ratio per axis."""
        img = read_image(self.files[i])
        if img is None:
            raise DataError(f'{self.files[i]}: cannot be read as an image')
        (h0, w0), size = img.shape[:2], self.img_size
        mask = self._load_mask(i, (h0, w0))
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_LINEAR)
        if mask is not None:
            mask = cv2.resize(mask, (size, size), interpolation=cv2.INTER_NEAREST)
        return img, self._pixel_boxes(i, (size, size)), mask, (size / w0, size / h0)

    def __getitem__(self, i):
        self.draws += 1
        rng = np.random.default_rng(None if self.seed is None else [self.seed, i, self.draws])
        (h0, w0) = (int(self.shapes[i][0]), int(self.shapes[i][1]))
        ratio, pad = 1.0, (0, 0)
        if self.augment and not self.rect and rng.random() < self.hyp['mosaic']:
            img, boxes, mask = self._mosaic(i, rng)
        elif self.stretch:
            img, boxes, mask, ratio = self._stretched(i)
        else:
            img, _ = self._load(i)
            mask = self._load_mask(i, img.shape[:2])
            shape = self.batch_shapes[i] if self.rect else self.img_size
            resized_hw = img.shape[:2]
            img, ratio, pad = letterbox(img, shape, auto=False, scaleup=self.augment)
            if mask is not None:
                mask = letterbox_mask(mask, ratio, pad, img.shape[:2])
            boxes = self._pixel_boxes(i, resized_hw, ratio, pad)
            ratio = ratio * resized_hw[0] / h0  # from the original image, for scale_boxes
            if self.augment:
                img, boxes, mask = self._affine(img, boxes, mask, None, rng)
        if self.augment:
            augment_hsv(img, self.hyp['hsv_h'], self.hyp['hsv_s'], self.hyp['hsv_v'], rng)
            for horizontal, key in ((True, 'fliplr'), (False, 'flipud')):
                if rng.random() < self.hyp[key]:
                    img, boxes = flip(img, boxes, horizontal)
                    mask = None if mask is None else flip_mask(mask, horizontal)
        h, w = img.shape[:2]
        labels = torch.zeros((len(boxes), 6))
        if len(boxes):
            labels[:, 1] = torch.from_numpy(boxes[:, 0])
            xywh = xyxy2xywh(boxes[:, 1:]) / np.array([w, h, w, h])
            labels[:, 2:] = torch.from_numpy(xywh.astype(np.float32))
        img = np.ascontiguousarray(img[:, :, ::-1].transpose(2, 0, 1))  # BGR HWC -> RGB CHW
        mask = None if mask is None else torch.from_numpy(np.ascontiguousarray(mask))
        return torch.from_numpy(img), labels, str(self.files[i]), ((h0, w0), (ratio, pad)), mask

    @staticmethod
    def collate_fn(batch):
        imgs, labels, paths, shapes, masks = zip(*batch)
        for k, lab in enumerate(labels):
            lab[:, 0] = k  # image index within the batch
        masks = torch.stack(masks) if masks[0] is not None else None
        return torch.stack(imgs), torch.cat(labels, 0), list(paths), list(shapes), masks


def _worker_init(worker_id):
    cv2.setNumThreads(0)  # the loader already runs one process per worker
    os.nice(10)  # where cores are few, the step's threads come first; idle cores are the same


def create_dataloader(source, nc, img_size=320, batch_size=16, augment=False, hyp=None,
                      rect=False, stride=32, workers=2, shuffle=False, cache_images=False,
                      prefix='', distributed=False, seed=0, seg_nc=0, pin_memory=False,
                      stretch=False):
    """A DataLoader over a YoloDataset; with distributed=True each process gets its share;
    workers=None: default_workers for this machine."""
    dataset = YoloDataset(source, nc, img_size, batch_size, augment, hyp, rect, stride,
                          cache_images, prefix, seg_nc=seg_nc, stretch=stretch)
    sampler = None
    if distributed:
        sampler = torch.utils.data.distributed.DistributedSampler(
            dataset, shuffle=shuffle and not rect, seed=seed)
    if workers is None:
        workers = default_workers(torch.cuda.is_available())
    workers = min(workers, os.cpu_count() or 1, batch_size)
    shuffle = shuffle and sampler is None and not rect
    # seeded here, not by the global RNG: PTQ calibrated on another sample every run
    order = torch.Generator().manual_seed(seed) if shuffle else None
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, generator=order,
        sampler=sampler, num_workers=workers, collate_fn=YoloDataset.collate_fn,
        worker_init_fn=_worker_init, persistent_workers=workers > 0, pin_memory=pin_memory,
        prefetch_factor=4 if workers > 0 else None)
    return loader, dataset
