"""Command-line options: one parser class for every tool, the flags several tools share defined
once, and typed option objects (dataclasses) whose fields are the single place a default lives.

- ``Parser``: argparse with one-line errors that name the flag and the closest valid one
  (``--sr-trget`` -> "did you mean --sr-target?"), no abbreviations (a flag added later must not
  change what an old abbreviation meant), exit code 2 as argparse does.
- ``SHARED``: ``--weights --cfg --data --img-size --device --project --name --exist-ok
  --batch-size --workers``, one meaning and one type each, whatever the tool; a tool chooses
  only the default (``add_shared``).
- ``Options``: a dataclass base built from keyword arguments (``from_kwargs``: a misspelt name is
  an OptionError naming it and the closest valid one) or from a parser built from its fields
  (``add_fields``: flags, help and choices in each field's metadata).
"""
from __future__ import annotations

import argparse
import dataclasses
import difflib
import functools
import inspect
import math
import sys

from utils.errors import OptionError


def closest(name, choices):
    """' (did you mean X?)' for the most similar of choices, or ''."""
    match = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f' (did you mean {match[0]}?)' if match else ''


def refuse_unknown(keys, names, where=''):
    """An OptionError for the first of keys that is not one of names, naming the closest."""
    for key in keys:
        if key not in names:
            raise OptionError(f"{where}unknown option '{key}'{closest(key, names)}")


def keyword_options(run):
    """For a command's run(**kw) written as a plain function: a keyword it does not take is an
    OptionError naming the closest one it does (as Options.from_kwargs says for the commands
    whose options are dataclasses), not a TypeError."""
    params = inspect.signature(run).parameters.values()
    names = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]

    @functools.wraps(run)
    def checked(*args, **kw):
        refuse_unknown(kw, names)
        return run(*args, **kw)
    return checked


class Parser(argparse.ArgumentParser):
    """argparse that reports a bad command line in one line (what and which flag), exit code 2."""

    def __init__(self, *args, **kw):
        kw.setdefault('allow_abbrev', False)
        kw.setdefault('formatter_class', argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kw)

    def flags(self):
        return [s for a in self._actions for s in a.option_strings]

    def error(self, message):
        if message.startswith('unrecognized arguments:'):
            unknown = [w for w in message.split(':', 1)[1].split() if w.startswith('-')]
            message += ''.join(closest(w.split('=')[0], self.flags()) for w in unknown[:1])
        sys.stderr.write(f'{self.prog}: error: {message} (see --help)\n')
        sys.exit(2)


def at_least(low):
    """An argparse type: an int of at least ``low`` (argparse names the flag in its message)."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f'must be {low} or more, got {value}')
        return value
    parse.__name__ = f'int >= {low}'
    return parse


def _number(text):
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None


def unit_float(text):
    """An argparse type: a number in [0, 1] (thresholds, shares)."""
    value = _number(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f'must be in [0, 1], got {value}')
    return value


# the largest input side accepted: an 8192 px square of float32 is 0.8 GB before the first
# conv, and yolov3's activations at that size take about 80 GB
MAX_IMG_SIZE = 8192


def size_problem(value, stride=32):
    """Why ``value`` cannot be an input side, or ''."""
    if value < stride or value % stride:
        return f'must be a multiple of {stride} (the largest stride), got {value}'
    if value > MAX_IMG_SIZE:
        return (f'must be at most {MAX_IMG_SIZE} (its activations would not fit in memory), '
                f'got {value}')
    return ''


def image_size(text):
    """An argparse type: an input size in pixels, a multiple of 32 (the largest stride)."""
    value = at_least(32)(text)
    problem = size_problem(value)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return value


def non_negative_float(text):
    """An argparse type: a finite number, 0 or more (budgets, tolerances)."""
    value = _number(text)
    if not 0 <= value < float('inf'):
        raise argparse.ArgumentTypeError(f'must be a number, 0 or more, got {value}')
    return value


def positive_float(text):
    """An argparse type: a number above 0 (temperatures, gains)."""
    value = _number(text)
    if not 0 < value < float('inf'):
        raise argparse.ArgumentTypeError(f'must be a number above 0, got {value}')
    return value


# flag, argparse keywords: the options several tools take, with one meaning each
SHARED = {
    'weights': ('--weights', {'help': '.pt checkpoint, or darknet .weights (with --cfg)'}),
    'cfg': ('--cfg', {'help': 'darknet .cfg (a .pt checkpoint holds its own)'}),
    'data': ('--data', {'help': '.data file: classes=, train=, valid=, names='}),
    'img_size': ('--img-size', {'type': int, 'nargs': '+', 'metavar': 'N',
                                'help': 'input size in pixels (default: the cfg [net] width)'}),
    'batch_size': ('--batch-size', {'type': at_least(1), 'help': 'images per batch'}),
    'device': ('--device', {'help': "'' (CUDA 0 if present, else the CPU), 'cpu', '0', 'cuda:1'"}),
    'workers': ('--workers', {'type': at_least(0), 'help': 'data loader processes'}),
    'project': ('--project', {'help': 'parent folder of the run folders'}),
    'name': ('--name', {'help': 'run folder name (exp, exp2, ... when it exists)'}),
    'exist_ok': ('--exist-ok', {'action': 'store_true',
                                'help': 'write into --project/--name even if it exists'}),
    'amp': ('--amp', {'action': argparse.BooleanOptionalAction,
                      'help': 'reduced-precision inference of a float model: fp16 on CUDA, bf16 '
                              'on a CPU (default: on CUDA and on CPUs with bf16 instructions); '
                              'boxes are decoded in fp32'}),
}


def add_shared(parser, notes=None, **defaults):
    """Add the shared flags named by ``defaults`` (name=default); ``notes`` extends a help."""
    for name, default in defaults.items():
        flag, kw = SHARED[name]
        kw = dict(kw)
        if notes and name in notes:
            kw['help'] = f"{kw['help']}; {notes[name]}"
        if kw.get('action') != 'store_true':
            kw['default'] = default
        parser.add_argument(flag, **kw)


def field(default=None, help='', flags=None, shared=False, cli=True, **argparse_kw):  # noqa: A002
    """A dataclass field carrying its command-line form: ``flags`` (default --the-name), ``help``,
    argparse keywords; ``shared`` takes flag and help from SHARED; ``cli=False`` for fields that
    only code sets. Mutable defaults are copied per instance."""
    meta = {'help': help, 'flags': flags, 'shared': shared, 'cli': cli, 'kw': argparse_kw}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclasses.dataclass
class Options:
    """Base of the typed option objects; subclasses add fields made with ``field``."""

    @classmethod
    def option_names(cls):
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_kwargs(cls, **kw):
        """The options from keyword arguments; an unknown name is an OptionError."""
        refuse_unknown(kw, cls.option_names())
        return cls(**kw)

    @classmethod
    def from_dict(cls, values):
        """Options saved by an older version: unknown keys are dropped, missing ones default."""
        names = set(cls.option_names())
        return cls(**{k: v for k, v in values.items() if k in names})

    def validate(self):
        """Each field's value against its own flag's type, choices and kind: what a saved or
        passed value must be when no command line parsed it. Raises OptionError naming the
        field; returns self."""
        for f in dataclasses.fields(self):
            meta = f.metadata
            kinds = {k.strip() for k in str(f.type).split('|')} - {'None'}
            if not meta.get('cli', True) or len(kinds) > 1:  # several kinds: check() sees to them
                continue
            shared = meta.get('shared')
            kw = dict(SHARED[f.name][1]) if shared else dict(meta.get('kw', {}))
            problem = _field_problem(getattr(self, f.name), f.default, kw)
            if problem:
                flag = SHARED[f.name][0] if shared else \
                    (meta.get('flags') or ['--' + f.name.replace('_', '-')])[0]
                raise OptionError(f'{flag} {getattr(self, f.name)!r}: {problem}')
        return self

    def to_dict(self):
        """Plain types only (checkpoints load with weights_only)."""
        out = {}
        for k, v in dataclasses.asdict(self).items():
            out[k] = list(v) if isinstance(v, tuple) else v
        return out

    def replace(self, **kw):
        refuse_unknown(kw, self.option_names())
        return dataclasses.replace(self, **kw)

    @classmethod
    def add_fields(cls, parser):
        """One flag per field with metadata cli=True."""
        for f in dataclasses.fields(cls):
            meta = f.metadata
            if not meta.get('cli', True):
                continue
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            if meta.get('shared'):
                add_shared(parser, notes={f.name: meta['help']} if meta['help'] else None,
                           **{f.name: default})
                continue
            flags = meta.get('flags') or ['--' + f.name.replace('_', '-')]
            kw = dict(meta.get('kw', {}))
            if kw.get('action') not in ('store_true', 'store_false'):
                kw['default'] = default
            parser.add_argument(*flags, dest=f.name, help=meta.get('help', ''), **kw)
        return parser

    @classmethod
    def from_args(cls, namespace):
        return cls(**{k: v for k, v in vars(namespace).items() if k in cls.option_names()})


def _field_problem(value, default, kw):
    """Why ``value`` cannot be what a flag with argparse keywords ``kw`` gives, or ''."""
    if kw.get('action') in ('store_true', 'store_false', argparse.BooleanOptionalAction):
        ok = isinstance(value, bool) or (value is None and default is None)
        return '' if ok else 'must be true or false'
    if value is None:
        return '' if default is None else 'must be given'
    if 'const' in kw and value == kw['const']:  # nargs='?' given without a value
        return ''
    if kw.get('nargs') in ('+', '*'):
        if not isinstance(value, (list, tuple)):
            return 'must be a list'
        return next((p for v in value for p in [_one_problem(v, kw)] if p), '')
    return _one_problem(value, kw)


def _one_problem(value, kw):
    kind, choices = kw.get('type', str), kw.get('choices')
    if choices is not None and value not in choices:
        return f"must be one of {', '.join(map(str, choices))}"
    if kind in (int, float) or kind.__name__.startswith(('int >=', 'image_size')):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                (kind is not float and not float(value).is_integer()):
            return 'must be a number' if kind is float else 'must be a whole number'
    if kind is str:
        return '' if isinstance(value, str) else 'must be text'
    if kind in (int, float):
        return '' if math.isfinite(value) else 'must be finite'
    try:  # the flag's own parser: ranges, multiples, finiteness
        kind(str(value))
    except (argparse.ArgumentTypeError, ValueError) as e:
        return str(e)
    return ''


def one_size(img_size, default, stride=32):
    """--img-size (an int, or a list from the command line) as one size, the default when
    absent: evaluation and detection letterbox to a square of it."""
    if img_size is None or img_size == []:
        return default
    sizes = [img_size] if isinstance(img_size, int) else list(img_size)
    if len(sizes) != 1:
        raise OptionError(f'--img-size: give one size (images are letterboxed to a square), '
                          f'got {" ".join(map(str, sizes))}')
    problem = size_problem(sizes[0], stride)
    if problem:
        raise OptionError(f'--img-size {problem}')
    return sizes[0]
