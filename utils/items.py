"""The checked items of a dataset: images, their YOLO labels and masks, found, verified once and
cached (under ``cache_root()``, never beside the data; keyed by file sizes and modification
times), and read as stored."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from utils.augment import (IGNORE, resize_mask)
from utils.boxes import xywh2xyxy, xyxy2xywh
from utils.files import atomic_write_text, glob_files
from utils.log import LOGGER
from utils.data_cfg import DataError

IMG_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')
CACHE_VERSION = 2
BOX_TOLERANCE = 0.01  # normalized coordinates may overshoot [0, 1] by this much (rounding)


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
