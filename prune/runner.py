"""The body of the prune command, whatever the method: load, select (the method's own part, from
prune/methods.py), cut, check, evaluate, save, report."""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import torch

from models.cfg import save_cfg
from models.weights import load_checkpoint, load_model, save_checkpoint, save_darknet_weights
from prune.methods import METHODS, OPTIONS
from prune.plan import PruneError
from prune.report import channel_rows, channel_table, stage_figures, summary_table
from prune.surgery import layer_masks, masked_model, prune_model, renumber
from utils.cli import friendly_errors
from utils.datasets import create_dataloader, parse_data_cfg
from utils.evaluate import evaluate_model
from utils.files import atomic_write_text, whole_or_none
from utils.log import LOGGER
from utils.options import Options, Parser, at_least, field, one_size, refuse_unknown
from utils.runs import increment_path
from utils.torch_utils import select_device

TOLERANCE = 1e-3  # pruned vs masked outputs, in pixels; they agree to float rounding (~1e-5)


@dataclasses.dataclass
class PruneOptions(Options):
    """What every prune method is told besides its own selection options (prune/methods.py)."""
    cfg: str = field('', shared=True)
    data: str = field('data/shapes.data', shared=True)
    weights: str = field('weights/yolov3-mini.pt', shared=True)
    img_size: int | list | tuple | None = field(None, shared=True)
    batch_size: int = field(16, shared=True)
    device: str = field('', shared=True)
    workers: int = field(2, shared=True)
    eval: bool = field(True, 'evaluate mAP of the original, masked and pruned models',
                       action=argparse.BooleanOptionalAction)
    latency_runs: int = field(20, '0: skip the latency figures', type=at_least(0))
    project: str = field('runs/prune', shared=True)
    name: str = field('exp', shared=True)
    exist_ok: bool = field(False, shared=True)


def parser(method, doc, prog=''):
    p = Parser(prog=prog or f'{method}_prune.py', description=doc.strip().splitlines()[0])
    PruneOptions.add_fields(p)
    m = METHODS[method]
    for option in m.options:
        flags, kw = OPTIONS[option]
        p.add_argument(*flags, dest=option, **kw | {'default': m.default(option)})
    return p


def script_main(method, doc, prog=''):
    """The main() of a prune command: its flags from the registry, one-line errors."""
    @friendly_errors
    def main(argv=None):
        return run_method(method, **vars(parser(method, doc, prog).parse_args(argv)))
    return main


def _source_cfg_name(weights, cfg):
    if cfg:
        return Path(cfg).stem
    if str(weights).endswith('.pt'):
        source = (load_checkpoint(weights).get('opt') or {}).get('cfg')
        if source and '\n' not in source:  # a run started from a .pt keeps its cfg text
            return Path(source).stem
    return Path(weights).stem


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def max_abs_diff(a, b, img_size, device) -> float:
    x = torch.rand(2, a.in_channels, img_size, img_size, device=device,
                   generator=torch.Generator(device).manual_seed(0))
    return (a(x)[0] - b(x)[0]).abs().max().item()


@torch.no_grad()
def first_divergence(model, plan, masked, pruned, img_size, device, tol=1e-4):
    """The first layer whose pruned output differs from the masked one's kept channels by more
    than ``tol`` relative to its size, as (layer, difference), or None."""
    outs = {}

    def keep(tag, i):
        return lambda module, inputs, out: outs.__setitem__((tag, i), out)

    new_index = renumber(model, plan)
    handles = [m.register_forward_hook(keep('masked', i))
               for i, m in enumerate(masked.module_list)]
    handles += [m.register_forward_hook(keep('pruned', i))
                for i, m in enumerate(pruned.module_list)]
    x = torch.rand(1, model.in_channels, img_size, img_size, device=device,
                   generator=torch.Generator(device).manual_seed(0))
    masked(x), pruned(x)
    for h in handles:
        h.remove()
    for i, mask in enumerate(layer_masks(model, plan)):
        if new_index[i] is None:
            continue
        a, b = outs[('masked', i)], outs[('pruned', new_index[i])]
        a = a[:, mask.to(a.device)] if a.dim() == 4 else a
        diff = (a - b).abs().max().item() if a.shape == b.shape else float('inf')
        if diff > tol * max(1.0, a.abs().max().item()):
            return i, diff
    return None


def run_method(method, **kw):
    """Prune with a registered method; ``kw`` holds PruneOptions and the method's selection
    options (None: default). Returns the prune.json content."""
    m = METHODS[method]
    names = PruneOptions.option_names()
    refuse_unknown(sorted(kw), [*names, *OPTIONS], f'{method}: ')
    opt = PruneOptions.from_kwargs(**{k: v for k, v in kw.items() if k in names}).validate()
    opts = m.resolve(**{k: v for k, v in kw.items() if k not in names})
    return prune_and_report(method, m.tag(opts), lambda model: m.select(model, **opts), opt)


def prune_and_report(method, tag, select, opt):
    """Prune with ``select(model) -> PrunePlan``; returns the prune.json content. The outputs
    appear together: the cfg, weights and checkpoint first, prune.json last, so a folder with a
    prune.json holds a complete set."""
    weights, cfg, device = opt.weights, opt.cfg, select_device(opt.device)
    model = load_model(weights, cfg or None).float().to(device).eval()
    data_cfg = parse_data_cfg(opt.data)
    size = one_size(opt.img_size, model.img_size[1])
    plan = select(model)
    masked, pruned = masked_model(model, plan), prune_model(model, plan)
    if n_params(pruned) == n_params(model):
        raise PruneError(f'{method}: the plan removes nothing, so nothing was written (every '
                         'layer keeps all its channels: check --percent, --round, which widths '
                         'round up to, and --layer_keep; cfg pruning needs pruning= keys)')
    diff = max_abs_diff(masked, pruned, size, device)
    if diff > TOLERANCE:
        where = first_divergence(model, plan, masked, pruned, size, device)
        layer = f'first at layer {where[0]} ({where[1]:.2e})' if where else 'at the outputs'
        raise PruneError(f'pruned and masked outputs differ by {diff:.2e}, {layer}: nothing '
                         f'was written; please report this with the cfg')
    loader = (_val_loader(data_cfg, size, opt.batch_size, opt.workers, model.seg_nc)
              if opt.eval else None)
    save_dir = increment_path(opt.project, opt.name, opt.exist_ok)
    stem = save_dir / '_'.join(filter(None, (_source_cfg_name(weights, cfg), method, tag)))
    outputs = [Path(f'{stem}{suffix}') for suffix in ('.cfg', '.weights', '.pt')]
    with whole_or_none(outputs):  # prune.json, written last, says the set is whole
        _save(pruned, stem, data_cfg['names'], {'method': method, 'source': str(weights)})
        stages = {}
        for stage, net in (('original', model), ('masked', masked), ('pruned', pruned)):
            metrics = evaluate_model(net, loader, data_cfg['names'], verbose=False, plots=False,
                                     seg_names=data_cfg.get('seg_names')) if loader else None
            stages[stage] = stage_figures(net, size, device, metrics, opt.latency_runs)
        rows = channel_rows(model, layer_masks(model, plan), plan.dropped_layers())
        report = {'method': method, 'cfg': str(outputs[0]), 'weights': str(outputs[1]),
                  'pt': str(outputs[2]), 'source': str(weights), 'img_size': size,
                  'dropped_blocks': plan.dropped, 'max_abs_diff_pruned_vs_masked': diff,
                  **stages, 'channels': rows}
        atomic_write_text(save_dir / 'prune.json', json.dumps(report, indent=2))
    print(summary_table(stages, f' {method} prune: {Path(weights).name} '))
    print(channel_table(rows))
    LOGGER.info(f'pruned == masked: max |diff| {diff:.1e}\nsaved {stem}.cfg, .weights, .pt and '
                f'prune.json in {save_dir}')
    return report


def _val_loader(data_cfg, size, batch_size, workers, seg_nc=0):
    loader, _ = create_dataloader(data_cfg['valid'], len(data_cfg['names']), size, batch_size,
                                  workers=workers, prefix='valid: ', seg_nc=seg_nc)
    return loader


def _save(pruned, stem, names, meta):
    save_cfg(pruned.blocks, f'{stem}.cfg')
    save_darknet_weights(pruned, f'{stem}.weights')
    save_checkpoint({'cfg': pruned.cfg_text, 'model': pruned.state_dict(), 'names': names,
                     'opt': {'cfg': f'{stem}.cfg'}, 'prune': meta}, f'{stem}.pt')
