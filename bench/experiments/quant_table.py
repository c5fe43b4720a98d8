"""What does each quantization scheme cost? The same short fine-tune of a float model in FP32 and
with each --quantized variant, plus PTQ with each calibrator, scored on the validation set; the
8-bit modes 1 and 3 also as their int8 Q/DQ ONNX run by onnxruntime.

    python3 -m bench.experiments.quant_table       # yolov3-mini, built-in dataset, 2 epochs
    python3 bench/experiments/quant_table.py --variants fp32 q3 q3-fold --ptq entropy --epochs 1

Prints a table (mAP@0.5, mAP@0.5:0.95, change against FP32) and writes quant_table.json.

Feeds docs/results/quantization.md.
"""
from __future__ import annotations

import argparse
from pathlib import Path


from terminaltables import AsciiTable

from bench.provenance import write_result
import export
from quantize.loader import load_for_inference
from utils.evaluate import evaluate_on
from utils.torch_utils import select_device
import train
from quantize import ptq
from utils.runs import increment_path

VARIANTS = {  # name: (description, train.py flags)
    'fp32': ('FP32 fine-tune', {}),
    'q1': ('1 Google 8-bit', {'quantized': 1}),
    'q1-fold': ('1 Google 8-bit +BN_Fold', {'quantized': 1, 'BN_Fold': True}),
    'q3': ('3 TensorRT 8-bit', {'quantized': 3}),
    'q3-fold': ('3 TensorRT 8-bit +BN_Fold', {'quantized': 3, 'BN_Fold': True}),
    'q3-fpga': ('3 TensorRT 8-bit +BN_Fold +FPGA', {'quantized': 3, 'BN_Fold': True,
                                                     'FPGA': True}),
    'q3-ema': ('3 TensorRT 8-bit, EMA ranges', {'quantized': 3, 'quant_observer': 'ema'}),
    'q3-pct': ('3 TensorRT 8-bit, percentile ranges', {'quantized': 3,
                                                       'quant_observer': 'percentile'}),
    'q3-w4': ('3 TensorRT w4 a8', {'quantized': 3, 'w_bits': 4}),
    'q2': ('2 DoReFa w8 a8', {'quantized': 2}),
    'q2-w4a4': ('2 DoReFa w4 a4', {'quantized': 2, 'w_bits': 4, 'a_bits': 4}),
}
ONNX_ROWS = ('q1', 'q3', 'q3-fold', 'q3-ema', 'q3-pct')  # 8-bit with a Q/DQ form


def score(weights, opt, out, name):
    m = evaluate_on(load_for_inference(weights, None, select_device('')), opt.data,
                    opt.img_size, verbose=False, plots=False, save_dir=out / name)
    return {'map50': round(m['map50'], 4), 'map50_95': round(m['map50_95'], 4)}


def onnx_score(weights, opt, out, name):
    path = export.run(weights=str(weights), img_size=(opt.img_size,), project=str(out),
                      name=f'{name}-onnx', exist_ok=True)[0]
    return score(path, opt, out, f'{name}-ort')


def qat_row(key, opt, out):
    desc, flags = VARIANTS[key]
    m = train.run(weights=opt.weights, data=opt.data, epochs=opt.epochs,
                  img_size=[opt.img_size], project=str(out), name=key, exist_ok=True,
                  notest=True, **flags)
    row = {'key': key, 'name': desc, 'map50': round(m['map50'], 4),
           'map50_95': round(m['map50_95'], 4)}
    if key in ONNX_ROWS:
        row['onnx'] = onnx_score(Path(m['save_dir']) / 'weights' / 'last.pt', opt, out, key)
    return row


def ptq_row(method, opt, out):
    r = ptq.run(weights=opt.weights, data=opt.data, calib=opt.calib, method=method,
                img_size=opt.img_size, project=str(out), name=f'ptq-{method}', exist_ok=True)
    return {'key': f'ptq-{method}', 'name': f'PTQ {method} ({opt.calib} images)',
            'map50': r['int8']['map50'], 'map50_95': r['int8']['map50_95'],
            'onnx': onnx_score(r['pt'], opt, out, f'ptq-{method}')}


def table(float_start, rows):
    base = next((r['map50'] for r in rows if r['key'] == 'fp32'), float_start['map50'])
    body = [['start: the float weights', f"{float_start['map50']:.4f}",
             f"{float_start['map50_95']:.4f}", '', '']]
    for r in rows:
        ort = f"{r['onnx']['map50']:.4f}" if 'onnx' in r else ''
        delta = '' if r['key'] == 'fp32' else f"{100 * (r['map50'] - base):+.2f}"
        body.append([r['name'], f"{r['map50']:.4f}", f"{r['map50_95']:.4f}", delta, ort])
    t = AsciiTable([['model', 'mAP@0.5', 'mAP@0.5:0.95', 'pts vs FP32', 'ORT int8 mAP@0.5']]
                   + body)
    t.inner_heading_row_border = True
    return t.table


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--weights', default='weights/yolov3-mini.pt')
    p.add_argument('--data', default='data/shapes.data')
    p.add_argument('--epochs', type=int, default=2)
    p.add_argument('--img-size', type=int, default=320)
    p.add_argument('--variants', nargs='*', default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument('--ptq', nargs='*', default=list(ptq.METHODS), choices=list(ptq.METHODS))
    p.add_argument('--calib', type=int, default=256)
    p.add_argument('--project', default='runs/bench/quant')
    opt = p.parse_args(argv)
    out = increment_path(opt.project, 'exp')
    float_start = score(opt.weights, opt, out, 'start')
    rows = [qat_row(k, opt, out) for k in opt.variants]
    rows += [ptq_row(m, opt, out) for m in opt.ptq]
    print(table(float_start, rows))
    result = {'weights': opt.weights, 'epochs': opt.epochs, 'start': float_start, 'rows': rows}
    write_result(out / 'quant_table.json', result)
    print(f'saved {out}/quant_table.json')


if __name__ == '__main__':
    main()
