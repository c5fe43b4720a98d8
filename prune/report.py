"""What every prune script reports: size, cost, accuracy and speed per stage, channels per layer."""
from __future__ import annotations

import statistics

import torch
from terminaltables import AsciiTable

from models.layers import ConvBNAct
from utils.evaluate import headline
from utils.torch_utils import time_runs

STAGES = ('original', 'masked', 'pruned')


@torch.no_grad()
def latency_ms(model, img_size, device, runs=20, warmup=3) -> float:
    """Median wall time of a batch-1 forward pass (eval mode) on ``device``."""
    model.eval()
    x = torch.rand(1, model.in_channels, img_size, img_size, device=device)
    return round(statistics.median(time_runs(lambda: model(x), runs, warmup)), 2)


def stage_figures(model, img_size, device, metrics=None, runs=20) -> dict:
    info = model.info(img_size)
    scores = headline(metrics) if metrics else {
        k: None for k, on in (('map50', model.yolo_layers), ('map50_95', model.yolo_layers),
                              ('miou', model.seg_layers)) if on}
    return {'params': info['params'], 'bflops': round(info['bflops'], 6), **scores,
            'latency_ms': latency_ms(model, img_size, device, runs) if runs else None,
            'device': str(device)}


def _fmt(v, digits=4):
    return '-' if v is None else f'{v:.{digits}f}' if isinstance(v, float) else f'{v:,}'


SCORES = (('map50', 'mAP@0.5'), ('map50_95', 'mAP@0.5:0.95'), ('miou', 'mIoU'))


def summary_table(stages: dict, title: str) -> str:
    scores = [(k, t) for k, t in SCORES if k in stages['original']]
    rows = [['stage', 'params', 'BFLOPs'] + [t for _, t in scores] +
            [f"latency ms ({stages['original']['device']})"]]
    for name in STAGES:
        s = stages[name]
        rows.append([name, _fmt(s['params']), _fmt(s['bflops'], 3)] +
                    [_fmt(s[k]) for k, _ in scores] + [_fmt(s['latency_ms'], 1)])
    o, p = stages['original'], stages['pruned']
    rows.append(['pruned/original', f"{p['params'] / o['params']:.1%}",
                 f"{p['bflops'] / o['bflops']:.1%}"] + [''] * len(scores) +
                [f"{p['latency_ms'] / o['latency_ms']:.1%}" if o['latency_ms'] else '-'])
    table = AsciiTable(rows, title)
    table.inner_heading_row_border = True
    return table.table


def channel_rows(model, masks, dropped_layers) -> list[dict]:
    """Per conv: channels before and after (0 for convs of dropped blocks)."""
    rows = []
    for i, m in enumerate(model.module_list):
        if isinstance(m, ConvBNAct):
            kept = 0 if i in dropped_layers else int(masks[i].sum())
            rows.append({'layer': i, 'channels': m.conv.out_channels, 'kept': kept})
    return rows


def channel_table(rows) -> str:
    """Only the layers that changed, to keep big networks readable."""
    body = [[r['layer'], r['channels'], r['kept'], f"{r['kept'] / r['channels']:.0%}"]
            for r in rows if r['kept'] != r['channels']]
    table = AsciiTable([['layer', 'channels', 'kept', 'kept %']] + body)
    table.inner_heading_row_border = True
    return f'channels kept ({len(body)} of {len(rows)} convs changed):\n{table.table}'
