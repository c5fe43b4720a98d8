r"""PTQ of a real model, each method alone and combined, scored where it is deployed: the
fake-quant model, its int8 graph in onnxruntime and in OpenVINO (each written by export.py, which
checks it first), and its agreement with the fp32 model on photos nobody labelled for it.

    python3 -m bench.experiments.ptq_table --cfg cfg/yolov3-tiny.cfg \
        --weights weights/yolov3-tiny.weights \
        --img-size 416 --name tiny
    python3 -m bench.experiments.ptq_table --cfg weights/yolo-fastest-1.1.cfg \
        --weights weights/yolo-fastest-1.1.weights --img-size 320 --name fastest

Calibration: the 128 train2017 photos of data/coco128.data. Choosing: the fake-quant mAP on
train2017 (labelled, and the calibration photos themselves). Reporting: val2017, scored once per
row. Agreement: mAP@0.5 of the fake-quant model against the fp32 model's detections above 0.25 on
the 128 val2017 photos plus the 101 CamVid val photos (utils/agreement.py). Writes
ptq_table.json and prints a markdown table.

Feeds docs/results/real.md.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from bench.provenance import caption, write_result
from models.weights import load_model
from quantize.loader import load_for_inference
from quantize.ptq import calibrated, calibration_batches
from utils.agreement import agreement
from utils.datasets import parse_data_cfg
from utils.evaluate import evaluate_on
from utils.runs import increment_path

ROOT = Path(__file__).resolve().parents[2]
# name: quantize/ptq.py options; 'base' is the symmetric int8 graph TensorRT takes, heads and all
ROWS = {
    'entropy (the old default)': {'method': 'entropy', 'int8_heads': True},
    'mse': {'method': 'mse', 'int8_heads': True},
    'percentile (base)': {'method': 'percentile', 'int8_heads': True},
    'base + float heads': {'method': 'percentile'},
    'base + asymmetric': {'method': 'percentile', 'int8_heads': True, 'asymmetric': True},
    'base + equalize': {'method': 'percentile', 'int8_heads': True, 'equalize': True},
    'float heads + asymmetric + equalize': {'method': 'percentile', 'asymmetric': True,
                                            'equalize': True},
    'float heads + asymmetric + equalize, mse': {'method': 'mse', 'asymmetric': True,
                                                 'equalize': True},
    'float heads + equalize (TensorRT-ready)': {'method': 'percentile', 'equalize': True},
}


def headline(m):
    return {'map50': round(m['map50'], 4), 'map50_95': round(m['map50_95'], 4)}


def deployed(pt, fmt, opt, out, name):
    """export.py's int8 graph of a checkpoint (its own check chooses the flavour), scored."""
    folder = out / f'{name}-{fmt}'
    r = subprocess.run([sys.executable, 'export.py', '--weights', str(pt), '--format', fmt,
                        '--img-size', str(opt.img_size), '--project', str(out), '--name',
                        folder.name, '--exist-ok'], cwd=ROOT, capture_output=True, text=True)
    if r.returncode:
        return {'error': r.stderr.strip().splitlines()[-1]}
    record = json.loads((folder / 'export.json').read_text())
    model = load_for_inference(record['files'][0], None, 'cpu')
    return headline(evaluate_on(model, opt.data, opt.img_size, verbose=False, plots=False)) | {
        'qdq': record['qdq'], 'check_q99': round(record['int8_check']['q99'], 4)}


def row(name, options, fp32, batches, agree_batches, opt, out):
    from models.weights import save_checkpoint
    model = calibrated(fp32, batches, **options)
    pt = out / f'{len(list(out.glob("*.pt")))}.pt'
    save_checkpoint({'cfg': model.cfg_text, 'model': model.state_dict(),
                     'quant': model.quant_config,
                     'ptq': {'source': parse_data_cfg(opt.data)['train']}}, pt)
    result = {'row': name, 'options': options,
              'train': headline(evaluate_on(model, opt.data, opt.img_size, split='train',
                                            verbose=False, plots=False)),
              'val': headline(evaluate_on(model, opt.data, opt.img_size, verbose=False,
                                          plots=False)),
              'agreement': round(agreement(fp32, model, agree_batches)['map50'], 4),
              'onnxruntime': deployed(pt, 'onnx', opt, out, pt.stem)}
    if opt.openvino:
        result['openvino'] = deployed(pt, 'openvino', opt, out, pt.stem)
    print(json.dumps(result), flush=True)
    return result


def cell(d, key='map50'):
    return f"{d[key]:.3f}" if key in d else d.get('error', '-')[:40]


def table(fp32_row, rows, openvino):
    head = ('| PTQ | train mAP@0.5 | val mAP@0.5 | val mAP@0.5:0.95 | '
            'ORT mAP@0.5 / :0.95 (flavour) |')
    head += ' OpenVINO mAP@0.5 / :0.95 (flavour) |' if openvino else ''
    head += ' agreement |'
    lines = [head, '|' + '---|' * (head.count('|') - 1)]
    lines.append(f"| fp32 | {fp32_row['train']['map50']:.3f} | {fp32_row['val']['map50']:.3f} | "
                 f"{fp32_row['val']['map50_95']:.3f} | | {'| ' if openvino else ''}1 |")
    for r in rows:
        graphs = [r['onnxruntime']] + ([r['openvino']] if openvino else [])
        cells = ' | '.join(f"{cell(g)} / {cell(g, 'map50_95')} ({g.get('qdq', '-')})"
                           for g in graphs)
        lines.append(f"| {r['row']} | {r['train']['map50']:.3f} | {r['val']['map50']:.3f} | "
                     f"{r['val']['map50_95']:.3f} | {cells} | {r['agreement']:.3f} |")
    return '\n'.join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--cfg', required=True)
    p.add_argument('--weights', required=True)
    p.add_argument('--img-size', type=int, required=True)
    p.add_argument('--data', default='data/coco128.data')
    p.add_argument('--calib', type=int, default=128)
    p.add_argument('--agree', nargs='+', default=['datasets/coco128/images/val2017',
                                                  'datasets/camvid/images/val'],
                   help='unlabelled photos for the agreement column')
    p.add_argument('--rows', nargs='+', default=list(ROWS), choices=list(ROWS))
    p.add_argument('--no-openvino', dest='openvino', action='store_false')
    p.add_argument('--project', default='runs/bench/ptq_table')
    p.add_argument('--name', default='exp')
    opt = p.parse_args(argv)
    out = increment_path(opt.project, opt.name, False)
    fp32 = load_model(opt.weights, opt.cfg).eval()
    train = parse_data_cfg(opt.data)['train']
    batches = calibration_batches(train, fp32.nc, opt.calib, opt.img_size, 16, 'cpu', 0)
    agree = [b for src in opt.agree
             for b in calibration_batches(src, fp32.nc, 10 ** 6, opt.img_size, 16, 'cpu', 0,
                                          prefix='agreement: ')]
    fp32_row = {'train': headline(evaluate_on(fp32, opt.data, opt.img_size, split='train',
                                              verbose=False, plots=False)),
                'val': headline(evaluate_on(fp32, opt.data, opt.img_size, verbose=False,
                                            plots=False))}
    rows = [row(name, ROWS[name], fp32, batches, agree, opt, out) for name in opt.rows]
    text = table(fp32_row, rows, opt.openvino)
    print(text)
    stamp = write_result(out / 'ptq_table.json', {'fp32': fp32_row, 'rows': rows,
                                                  'options': vars(opt)})
    (out / 'ptq_table.md').write_text(f'{text}\n\n{caption(stamp)}\n')


if __name__ == '__main__':
    main()
