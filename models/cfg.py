"""Darknet .cfg files: parse into blocks, validate every key, write back.

A cfg is a list of blocks; ``blocks[0]`` is ``[net]``. Each block keeps its options as the raw
strings of the file (in file order), so ``parse_cfg_text(write_cfg(blocks)) == blocks`` holds
exactly and a training-only key such as ``burn_in`` survives a round trip untouched. Typed access
goes through ``Block.get``, which knows darknet's defaults and raises a CfgError naming file:line
on a bad value.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from utils.errors import ToolkitError
from utils.files import atomic_write_text

ACTIVATION_NAMES = (
    'linear', 'leaky', 'relu', 'relu6', 'mish', 'swish', 'logistic', 'hswish', 'h_swish',
    'hard_sigmoid', 'tanh', 'elu', 'selu', 'gelu')


class CfgError(ToolkitError, ValueError):
    """A cfg problem; the message starts with file:line."""


# Block-name aliases darknet accepts; blocks are stored under the canonical name.
ALIASES = {'network': 'net', 'conv': 'convolutional', 'max': 'maxpool', 'avg': 'avgpool'}

# Keys that change the computation, with their type and darknet's default.
# Types: int, float, ints (comma list), floats, act (activation name), str.
SCHEMA = {
    'net': {'width': ('int', 416), 'height': ('int', 416), 'channels': ('int', 3)},
    'convolutional': {
        'filters': ('int', 1), 'size': ('int', 1), 'stride': ('int', 1), 'pad': ('int', 0),
        'padding': ('int', 0), 'groups': ('int', 1), 'dilation': ('int', 1),
        'batch_normalize': ('int', 0), 'activation': ('act', 'logistic')},
    'shortcut': {'from': ('ints', None), 'activation': ('act', 'linear'),
                 'weights_type': ('str', 'none'), 'weights_normalization': ('str', 'none')},
    'route': {'layers': ('ints', None), 'groups': ('int', 1), 'group_id': ('int', 0)},
    'upsample': {'stride': ('int', 2), 'scale': ('float', 1.0)},
    'maxpool': {'size': ('int', 1), 'stride': ('int', 1), 'padding': ('int', None)},
    'avgpool': {},
    'dropout': {'probability': ('float', 0.5)},
    'scale_channels': {'from': ('int', None), 'activation': ('act', 'linear')},
    'yolo': {'mask': ('ints', None), 'anchors': ('floats', None), 'classes': ('int', 20),
             'num': ('int', 1), 'scale_x_y': ('float', 1.0), 'new_coords': ('int', 0)},
}

# Keys darknet defines only for training (data augmentation, optimizer, loss, NMS): kept verbatim
# through a round trip and otherwise ignored.
TRAINING_KEYS = {
    'net': {
        'batch', 'subdivisions', 'momentum', 'decay', 'angle', 'saturation', 'exposure', 'hue',
        'learning_rate', 'burn_in', 'max_batches', 'policy', 'steps', 'scales', 'step', 'scale',
        'gamma', 'power', 'mosaic', 'mosaic_bound', 'cutmix', 'mixup', 'blur', 'gaussian_noise',
        'letter_box', 'flip', 'min_crop', 'max_crop', 'aspect', 'inputs', 'max_chart_loss', 'adam',
        'B1', 'B2', 'eps', 'sgdr_cycle', 'sgdr_mult', 'seq_scales', 'track', 'time_steps',
        'augment_speed', 'init_sequential_subdivisions', 'sequential_subdivisions', 'try_fix_nan',
        'loss_scale', 'dynamic_minibatch', 'optimized_memory', 'workspace_size_limit_MB',
        'adversarial_lr', 'attention', 'contrastive', 'contrastive_jit_flip', 'contrastive_color',
        'unsupervised', 'ema_alpha', 'use_cuda_graph', 'equidistant_point', 'num_boxes',
        'batches_per_cycle', 'batches_cycle_mult', 'resize_step', 'rescale', 'label_smooth_eps',
        'show_receptive_field', 'max_epochs', 'random'},
    'yolo': {
        'jitter', 'ignore_thresh', 'truth_thresh', 'random', 'iou_normalizer', 'cls_normalizer',
        'obj_normalizer', 'iou_loss', 'iou_thresh', 'iou_thresh_kind', 'nms_kind', 'beta_nms',
        'max_delta', 'label_smooth_eps', 'resize', 'focal_loss', 'max', 'counters_per_class',
        'objectness_smooth', 'uc_normalizer', 'delta_normalizer', 'track_history_size',
        'sim_thresh', 'dets_for_track', 'dets_for_show', 'track_ciou_norm', 'embedding_layer',
        'map', 'show_details', 'rescore', 'bias_match', 'absolute', 'thresh'},
    'convolutional': {'learning_rate', 'stopbackward', 'dont_update', 'burnin_update',
                      'train_only_bn'},
    'shortcut': {'stopbackward'},
    'route': {'stopbackward'},
    'maxpool': {'stopbackward'},
    'dropout': {'dropblock', 'dropblock_size_rel', 'dropblock_size_abs'},
}

# Keys darknet defines that change the computation in ways this toolkit does not implement:
# refusing them beats silently building a different network.
UNSUPPORTED_KEYS = {
    'convolutional': {'binary', 'xnor', 'bin_output', 'antialiasing', 'share_index', 'stride_x',
                      'stride_y', 'coordconv', 'deform', 'sway', 'rotate', 'stretch',
                      'stretch_sway', 'flipped', 'dot', 'angle', 'grad_centr', 'reverse',
                      'assisted_excitation'},
    'maxpool': {'stride_x', 'stride_y', 'maxpool_depth', 'out_channels', 'antialiasing'},
    'scale_channels': {'scale_wh'},
    'upsample': {'reverse'},
}


@dataclass
class Block:
    """One ``[type]`` section. Equality looks at type and options only."""
    type: str
    options: dict = field(default_factory=dict)
    source: str = field(default='<string>', compare=False)
    line: int = field(default=0, compare=False)
    key_lines: dict = field(default_factory=dict, compare=False, repr=False)

    def where(self, key=None) -> str:
        return f'{self.source}:{self.key_lines.get(key, self.line)}'

    def error(self, message, key=None) -> CfgError:
        return CfgError(f'{self.where(key)}: [{self.type}] {message}')

    def get(self, key, default=...):
        """Typed value of a computation key (SCHEMA), or its darknet default."""
        kind, schema_default = SCHEMA[self.type][key]
        if key not in self.options:
            value = schema_default if default is ... else default
            if value is None:
                raise self.error(f"needs '{key}='")
            return value
        return _convert(self, key, kind, self.options[key])

    def copy(self) -> Block:
        return Block(self.type, dict(self.options), self.source, self.line, dict(self.key_lines))


def _convert(block, key, kind, raw):
    try:
        if kind == 'int':
            return int(raw)
        if kind == 'float':
            return float(raw)
        if kind == 'ints':
            return [int(v) for v in raw.split(',') if v.strip()]
        if kind == 'floats':
            return [float(v) for v in raw.split(',') if v.strip()]
    except ValueError:
        raise block.error(f"bad value '{key}={raw}' (expected {kind})", key) from None
    if kind == 'act' and raw not in ACTIVATION_NAMES:
        raise block.error(f"unknown activation '{raw}' (known: {', '.join(ACTIVATION_NAMES)})", key)
    return raw


def parse_cfg(path) -> list[Block]:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise CfgError(f'{path}: cannot read cfg ({e.strerror})') from None
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
            blocks.append(Block(ALIASES.get(name, name), {}, source, n, {}))
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
        if b.type not in SCHEMA:
            raise b.error(f"unknown block type (known: {', '.join(SCHEMA)})")
        if i > 0 and b.type == 'net':
            raise b.error('[net] may only appear once, first')
        for key, raw in b.options.items():
            if key in SCHEMA[b.type]:
                _convert(b, key, SCHEMA[b.type][key][0], raw)
            elif key in UNSUPPORTED_KEYS.get(b.type, ()):
                raise b.error(f"key '{key}' is darknet's but not supported by this toolkit", key)
            elif key not in TRAINING_KEYS.get(b.type, ()):
                raise b.error(f"unknown key '{key}'", key)


def write_cfg(blocks: list[Block]) -> str:
    sections = []
    for b in blocks:
        lines = [f'[{b.type}]'] + [f'{k}={v}' for k, v in b.options.items()]
        sections.append('\n'.join(lines))
    return '\n\n'.join(sections) + '\n'


def save_cfg(blocks: list[Block], path) -> None:
    atomic_write_text(path, write_cfg(blocks))


def load_blocks(cfg) -> list[Block]:
    """Accept a path, cfg text (as found in checkpoints) or an already parsed block list."""
    if isinstance(cfg, list):
        return [b.copy() for b in cfg]
    if isinstance(cfg, str) and '\n' in cfg:
        return parse_cfg_text(cfg, '<checkpoint cfg>')
    return parse_cfg(cfg)
