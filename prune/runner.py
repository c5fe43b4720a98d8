"""The shared body of the six prune scripts: load, select (the script's own part), cut, check,
evaluate, save, report. A script only says how it builds its PrunePlan."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

import test as evaluation
from models.cfg import save_cfg
from models.weights import load_checkpoint, load_model, save_checkpoint, save_darknet_weights
from prune.masks import RANKS
from prune.report import channel_rows, channel_table, stage_figures, summary_table
from prune.surgery import layer_masks, masked_model, prune_model
from utils.datasets import create_dataloader, parse_data_cfg
from utils.log import LOGGER
from utils.runs import increment_path
from utils.torch_utils import select_device

TOLERANCE = 1e-3  # pruned vs masked outputs; they agree to float rounding (about 1e-5)


def base_parser(doc: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    p.add_argument('--cfg', default='', help='cfg of darknet --weights (a .pt holds its own)')
    p.add_argument('--data', default='data/shapes.data', help='.data file to evaluate on')
    p.add_argument('--weights', default='weights/yolov3-mini.pt', help='sparse-trained weights')
    p.add_argument('--img-size', type=int, default=None, help="default: the cfg's width")
    p.add_argument('--batch-size', type=int, default=16)
    p.add_argument('--device', default='', help="'' (CUDA if available), cpu, 0, ...")
    p.add_argument('--workers', type=int, default=2)
    p.add_argument('--eval', action=argparse.BooleanOptionalAction, default=True,
                   help='evaluate mAP of the original, masked and pruned models')
    p.add_argument('--latency-runs', type=int, default=20, help='0: skip the latency figures')
    p.add_argument('--project', default='runs/prune')
    p.add_argument('--name', default='exp')
    p.add_argument('--exist-ok', action='store_true')
    return p


def _source_cfg_name(weights, cfg):
    if cfg:
        return Path(cfg).stem
    if str(weights).endswith('.pt'):
        opt = load_checkpoint(weights).get('opt') or {}
        if opt.get('cfg'):
            return Path(opt['cfg']).stem
    return Path(weights).stem


SCRIPT_FLAGS = {  # the selection flags, shared by the scripts that take them
    'percent': (['--percent'], {'type': float, 'default': 0.5,
                                'help': 'share of the ranked gammas to prune'}),
    'min_keep': (['--min-keep'], {'type': float, 'default': 0.0, 'help': 'every layer keeps at '
                                  'least this share of its channels (and one), or it is an error'}),
    'layer_keep': (['--layer_keep', '--layer-keep'], {'type': float, 'default': 0.01, 'help':
                   'a layer under this share of its channels keeps its best ones instead'}),
    'round': (['--round'], {'type': int, 'default': 8,
                            'help': 'kept channels: a multiple of this'}),
    'rank': (['--rank'], {'default': 'global', 'choices': RANKS,
                          'help': 'global: raw |gamma|; layer: |gamma| over the largest of its '
                                  'layer (layers whose scale the sparse training shrank)'}),
    'shortcuts': (['--shortcuts'], {'type': int, 'default': 2,
                                    'help': 'residual blocks to drop'}),
}


def parse_script_args(doc, flags, argv=None, defaults=None):
    p = base_parser(doc)
    for flag in flags:
        names, kw = SCRIPT_FLAGS[flag]
        p.add_argument(*names, **kw | ({'default': defaults[flag]} if flag in (defaults or {})
                                       else {}))
    return p.parse_args(argv)


@torch.no_grad()
def max_abs_diff(a, b, img_size, device) -> float:
    x = torch.rand(2, a.in_channels, img_size, img_size, device=device,
                   generator=torch.Generator(device).manual_seed(0))
    return (a(x)[0] - b(x)[0]).abs().max().item()


def prune_and_report(method, tag, select, cfg='', data='data/shapes.data',
                     weights='weights/yolov3-mini.pt', img_size=None, batch_size=16, device='',
                     workers=2, eval=True, latency_runs=20, project='runs/prune', name='exp',
                     exist_ok=False):
    """Prune with ``select(model) -> PrunePlan``; returns the prune.json content."""
    device = select_device(device)
    model = load_model(weights, cfg or None).float().to(device).eval()
    data_cfg = parse_data_cfg(data)
    size = img_size or model.img_size[1]
    plan = select(model)
    masked, pruned = masked_model(model, plan), prune_model(model, plan)
    diff = max_abs_diff(masked, pruned, size, device)
    if diff > TOLERANCE:
        LOGGER.warning(f'WARNING: pruned and masked outputs differ by {diff:.2e}; please report '
                       'this with the cfg')
    save_dir = increment_path(project, name, exist_ok)
    stem = save_dir / f'{_source_cfg_name(weights, cfg)}_{method}_{tag}'
    _save(pruned, stem, data_cfg['names'], {'method': method, 'source': str(weights)})
    loader = _val_loader(data_cfg, size, batch_size, workers) if eval else None
    stages = {}
    for stage, m in (('original', model), ('masked', masked), ('pruned', pruned)):
        metrics = evaluation.run(model=m, dataloader=loader, names=data_cfg['names'],
                                 verbose=False, plots=False) if loader else None
        stages[stage] = stage_figures(m, size, device, metrics, latency_runs)
    rows = channel_rows(model, layer_masks(model, plan), plan.dropped_layers())
    report = {'method': method, 'cfg': f'{stem}.cfg', 'weights': f'{stem}.weights',
              'pt': f'{stem}.pt', 'source': str(weights), 'img_size': size,
              'dropped_blocks': plan.dropped, 'max_abs_diff_pruned_vs_masked': diff,
              **stages, 'channels': rows}
    (save_dir / 'prune.json').write_text(json.dumps(report, indent=2))
    print(summary_table(stages, f' {method} prune: {Path(weights).name} '))
    print(channel_table(rows))
    LOGGER.info(f'pruned == masked: max |diff| {diff:.1e}\nsaved {stem}.cfg, .weights, .pt and '
                f'prune.json in {save_dir}')
    return report


def _val_loader(data_cfg, size, batch_size, workers):
    loader, _ = create_dataloader(data_cfg['valid'], len(data_cfg['names']), size, batch_size,
                                  workers=workers, prefix='valid: ')
    return loader


def _save(pruned, stem, names, meta):
    save_cfg(pruned.blocks, f'{stem}.cfg')
    save_darknet_weights(pruned, f'{stem}.weights')
    save_checkpoint({'cfg': pruned.cfg_text, 'model': pruned.state_dict(), 'names': names,
                     'opt': {'cfg': f'{stem}.cfg'}, 'prune': meta}, f'{stem}.pt')
