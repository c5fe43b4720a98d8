"""Darknet .cfg files: parse into blocks, validate every key, write back.

A cfg is a list of blocks; ``blocks[0]`` is ``[net]``. Each block keeps its options as the raw
strings of the file (in file order) and its header as written (an alias such as ``[conv]``
stays ``[conv]``), so ``parse_cfg_text(write_cfg(blocks)) == blocks`` holds exactly and a
training-only key such as ``burn_in`` survives a round trip untouched. Typed access goes through
``Block.get``, which knows darknet's defaults and raises a CfgError naming file:line on a bad
value. Which blocks and keys exist, and what is done with each: models/dialect.py.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from models.dialect import (ACTIVATION_NAMES, ALIASES, COMPUTE, DEPLOY, KNOWN_BLOCKS,
                            UNSUPPORTED, known_keys)
from utils.errors import ToolkitError
from utils.files import atomic_write_text

class CfgError(ToolkitError, ValueError):
    """A cfg problem; the message starts with file:line."""


@dataclass
class Block:
    """One ``[type]`` section. Equality looks at type and options only."""
    type: str
    options: dict = field(default_factory=dict)
    source: str = field(default='<string>', compare=False)
    line: int = field(default=0, compare=False)
    key_lines: dict = field(default_factory=dict, compare=False, repr=False)
    header: str = field(default='', compare=False, repr=False)  # as written, e.g. 'conv'

    def where(self, key=None) -> str:
        return f'{self.source}:{self.key_lines.get(key, self.line)}'

    def error(self, message, key=None) -> CfgError:
        return CfgError(f'{self.where(key)}: [{self.type}] {message}')

    def get(self, key, default=...):
        """Typed value of a computation or deployment key, or its darknet default."""
        kind, schema_default = (COMPUTE.get(self.type, {}) | DEPLOY.get(self.type, {}))[key]
        if key not in self.options:
            value = schema_default if default is ... else default
            if value is None:
                raise self.error(f"needs '{key}='")
            return value
        return _convert(self, key, kind, self.options[key])

    def copy(self) -> Block:
        return Block(self.type, dict(self.options), self.source, self.line,
                     dict(self.key_lines), self.header)


def _split(raw):
    """darknet splits lists on commas; lightNet's colormaps also lean on spaces."""
    return [v for v in raw.replace(',', ' ').split()]


def _convert(block, key, kind, raw):
    try:
        if kind == 'int':
            return int(raw)
        if kind == 'float':
            return float(raw)
        if kind == 'ints':
            return [int(v) for v in _split(raw)]
        if kind == 'floats':
            return [float(v) for v in _split(raw)]
    except ValueError:
        raise block.error(f"bad value '{key}={raw}' (expected {kind})", key) from None
    if kind == 'strs':
        return [v.strip() for v in raw.split(',') if v.strip()]
    if kind.startswith('choice:') and raw not in kind[7:].split('|'):
        raise block.error(f"'{key}={raw}' is not one of {kind[7:].replace('|', ', ')}", key)
    if kind == 'act' and raw not in ACTIVATION_NAMES:
        raise block.error(f"unknown activation '{raw}' (known: {', '.join(ACTIVATION_NAMES)})", key)
    return raw


def parse_cfg(path) -> list[Block]:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise CfgError(f'{path}: cannot read cfg ({e.strerror})') from None
    try:
        text = raw.decode('utf-8')
    except UnicodeDecodeError:
        raise CfgError(f'{path}: not a text file (a cfg is [sections] of key=value lines)') \
            from None
    if '\0' in text:
        raise CfgError(f'{path}: not a text file (a cfg is [sections] of key=value lines)')
    return parse_cfg_text(text, str(path))


def parse_cfg_text(text: str, source: str = '<string>') -> list[Block]:
    blocks = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split('#', 1)[0].split(';', 1)[0].strip()
        if not line:
            continue
        if line.startswith('['):
            if not line.endswith(']'):
                raise CfgError(f'{source}:{n}: unterminated block header {line!r}')
            name = line[1:-1].strip()
            blocks.append(Block(ALIASES.get(name, name), {}, source, n, {}, name))
            continue
        if '=' not in line:
            raise CfgError(f'{source}:{n}: expected key=value, got {line!r}')
        if not blocks:
            raise CfgError(f'{source}:{n}: key=value before the first [block]')
        key, value = (s.strip() for s in line.split('=', 1))
        if key in blocks[-1].options:
            raise CfgError(f"{source}:{n}: duplicate key '{key}' in [{blocks[-1].type}]")
        blocks[-1].options[key] = value
        blocks[-1].key_lines[key] = n
    validate(blocks, source)
    return blocks


def validate(blocks: list[Block], source: str = '<string>') -> None:
    """Block types, key names and value types; layer references are checked by the model builder."""
    if not blocks or blocks[0].type != 'net':
        raise CfgError(f'{source}:1: a cfg must start with [net]')
    for i, b in enumerate(blocks):
        if b.type not in KNOWN_BLOCKS:
            raise b.error(f"unknown block type (known: {', '.join(KNOWN_BLOCKS)})")
        if i > 0 and b.type == 'net':
            raise b.error('[net] may only appear once, first')
        typed = COMPUTE[b.type] | DEPLOY.get(b.type, {})
        known = known_keys(b.type)
        for key, raw in b.options.items():
            if key in typed:
                _convert(b, key, typed[key][0], raw)
            elif key in UNSUPPORTED.get(b.type, ()):
                raise b.error(f"key '{key}' is darknet's but not supported by this toolkit", key)
            elif key not in known:
                raise b.error(f"unknown key '{key}'", key)


def write_cfg(blocks: list[Block]) -> str:
    sections = []
    for b in blocks:
        lines = [f'[{b.header or b.type}]'] + [f'{k}={v}' for k, v in b.options.items()]
        sections.append('\n'.join(lines))
    return '\n\n'.join(sections) + '\n'


def save_cfg(blocks: list[Block], path) -> None:
    atomic_write_text(path, write_cfg(blocks))


def with_classes(blocks: list[Block], nc: int) -> list[Block]:
    """The same network detecting ``nc`` classes: each [yolo] block's classes= and the filters=
    of the conv before it (anchors x (5 + classes)); a copy."""
    blocks = [b.copy() for b in blocks]
    for j, b in enumerate(blocks):
        if b.type == 'yolo':
            b.options['classes'] = str(nc)
            anchors = len(b.get('mask', None) or range(b.get('num')))
            blocks[j - 1].options['filters'] = str(anchors * (5 + nc))
    return blocks


def load_blocks(cfg) -> list[Block]:
    """Accept a path, cfg text (as found in checkpoints) or an already parsed block list."""
    if isinstance(cfg, list):
        return [b.copy() for b in cfg]
    if isinstance(cfg, str) and '\n' in cfg:
        return parse_cfg_text(cfg, '<checkpoint cfg>')
    return parse_cfg(cfg)
