"""`.data` and `.names` files: ``classes=``, ``train=``, ``valid=``, ``names=`` (and
``seg_classes=``, ``seg_names=``, ``fetch=``); paths relative to the .data file or absolute.
``train``/``valid`` name an image list (one path per line, relative to the list file), a folder,
or a glob."""
from __future__ import annotations

import os
from pathlib import Path


from utils.errors import ToolkitError
from utils.log import LOGGER


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
        from data.drawn import generate  # only for the built-in dataset
        hard = BUILTIN[path.name]
        LOGGER.info(f'built-in {"hard " if hard else ""}dataset not found: generating it once '
                    f'(under a minute)')
        generate(folder, hard=hard)
