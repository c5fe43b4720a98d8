"""compress.py's report: one row per stage against the baseline, as report.json, report.md, plots
and the same table on the terminal."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from terminaltables import AsciiTable

from utils.files import atomic_write_text
from utils.plots import GAMMA_BINS, gamma_histogram, pyplot, save_figure

COLUMNS = [('stage', 'stage'), ('params', 'params'), ('bflops', 'BFLOPs'),
           ('size_mb', 'size MB'), ('map50', 'mAP@0.5'), ('map50_95', 'mAP@0.5:0.95'),
           ('miou', 'mIoU'), ('latency_torch_ms', 'torch ms'), ('latency_ort_ms', 'onnxruntime ms'),
           ('latency_ov_ms', 'OpenVINO ms')]


def columns(rows):
    """The columns the rows have: mAP for detectors, mIoU for networks that segment."""
    return [(k, t) for k, t in COLUMNS if any(k in r for r in rows)]


def with_ratios(rows):
    """Each row gains ratios to the baseline (x of baseline; mAP as a difference in points)."""
    base = rows[0]
    for r in rows:
        r['vs_baseline'] = {k: round(r[k] / base[k], 4) for k in
                            ('params', 'bflops', 'size_mb', 'latency_torch_ms', 'latency_ort_ms',
                             'latency_ov_ms')
                            if r.get(k) and base.get(k)}
        for key in ('map50', 'miou'):  # points against the baseline
            if key in r and key in base:
                r['vs_baseline'][f'{key}_points'] = round(100 * (r[key] - base[key]), 2)
    return rows


def cell(row, key):
    v = row.get(key)
    if v is None:
        return ''
    if key == 'params':
        return f'{v:,}'
    if key == 'stage':
        return v + (' (int8)' if row.get('int8') else '')
    ratio = row['vs_baseline'].get(key)
    text = f'{v:.4f}' if key.startswith('map') else f'{v:g}'
    if key in ('map50', 'miou'):
        text += f" ({row['vs_baseline'][f'{key}_points']:+.1f})"
    elif ratio is not None and row['stage'] != 'baseline':
        text += f' ({ratio:.0%})'
    return text


def table_rows(rows):
    cols = columns(rows)
    return [[title for _, title in cols]] + [[cell(r, k) for k, _ in cols] for r in rows]


def markdown(rows, state):
    lines = ['| ' + ' | '.join(t) + ' |' for t in table_rows(rows)]
    lines.insert(1, '|' + '---|' * len(columns(rows)))
    opt = state['opt']
    head = [f"# Compression report: {opt['weights']} on {opt['data']}", '',
            f"{state.get('minutes', '?')} minutes. Percentages are of the baseline; mAP@0.5 and "
            'mIoU in parentheses: points against the baseline. size MB: weights at deployment '
            'precision (4 bytes per float parameter, 1 per int8 one; the export row: the ONNX '
            'file).', '']
    plots = ['', '![mAP vs BFLOPs](map_vs_bflops.png)', '',
             '![BN gammas](gammas.png)', '', '![channels kept](channels.png)', '']
    return '\n'.join(head + lines + plots)


def plot_gammas(gammas, path):
    """gammas: {stage: |gamma| of the prunable BN channels} for the stages that have them."""
    fig, ax = pyplot().subplots(figsize=(7, 3.5), tight_layout=True)
    centers = np.sqrt(GAMMA_BINS[:-1] * GAMMA_BINS[1:])
    for stage, g in gammas.items():
        ax.step(centers, gamma_histogram(g), where='mid', label=f'{stage} ({len(g)} channels)')
    ax.set_xscale('log')
    ax.set_xlabel('|gamma| of the prunable BN channels')
    ax.set_ylabel('channels')
    ax.legend()
    save_figure(fig, path, 110)


def plot_channels(state, path):
    rows = state['done'].get('prune', {}).get('channels', [])
    fig, ax = pyplot().subplots(figsize=(9, 3.5), tight_layout=True)
    if rows:
        x = np.arange(len(rows))
        ax.bar(x, [r['channels'] for r in rows], color='0.8', label='before')
        ax.bar(x, [r['kept'] for r in rows], color='tab:blue', label='kept')
        ax.set_xticks(x, [str(r['layer']) for r in rows], fontsize=7, rotation=90)
        ax.legend()
    ax.set_xlabel('conv layer')
    ax.set_ylabel('channels')
    save_figure(fig, path, 110)


def plot_map_vs_bflops(rows, path):
    """Accuracy against cost per stage: mAP@0.5 for detectors, mIoU otherwise."""
    key, label = ('map50', 'mAP@0.5') if 'map50' in rows[0] else ('miou', 'mIoU')
    fig, ax = pyplot().subplots(figsize=(5, 4), tight_layout=True)
    for r in rows:
        ax.scatter(r['bflops'], r[key])
        ax.annotate(r['stage'], (r['bflops'], r[key]), fontsize=8)
    ax.set_xlabel('BFLOPs')
    ax.set_ylabel(label)
    save_figure(fig, path, 110)


def write_report(save_dir, state, gammas):
    """Write report.json, report.md and the plots; print the table. Returns the report dict."""
    save_dir = Path(save_dir)
    rows = with_ratios([dict(r) for r in state['rows']])
    plot_map_vs_bflops(rows, save_dir / 'map_vs_bflops.png')
    plot_gammas(gammas, save_dir / 'gammas.png')
    plot_channels(state, save_dir / 'channels.png')
    report = {'opt': state['opt'], 'minutes': state.get('minutes'), 'stages': rows,
              'files': state['done'].get('export', {}).get('files', {})}
    atomic_write_text(save_dir / 'report.json', json.dumps(report, indent=2))
    atomic_write_text(save_dir / 'report.md', markdown(rows, state))
    table = AsciiTable(table_rows(rows), f" compress: {state['opt']['weights']} ")
    table.inner_heading_row_border = True
    print(table.table)
    print(f'report: {save_dir / "report.md"}')
    return report
