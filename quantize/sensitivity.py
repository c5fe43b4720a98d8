"""Per-layer sensitivity to int8 and to 2:4 sparsity, and the cheapest deployment plan that stays
within an accuracy budget, written as lightNet's per-layer cfg keys.

    python3 quantize/sensitivity.py --weights weights/yolov3-mini.pt                 # table, plot
    python3 quantize/sensitivity.py --weights weights/yolov3-mini.pt --max-drop 0.2  # + plan.cfg
    python3 quantize/sensitivity.py --weights best.pt --max-drop 1 --sparse24        # + sparse=1
    python3 quantize/sensitivity.py --weights best.pt --max-drop 1 --int4            # + W4A8

Sensitivity of a conv: the score (mAP@0.5; mIoU for a segmentation-only network) on --subset
training images with that layer alone int8 (its weights and output on the PTQ grid of --calib
images by --method, everything else float), and with that layer alone 2:4 (magnitude masks, no
fine-tuning), in points below the float model's.

Plan (--max-drop P): convs ranked by int8 sensitivity; the k most sensitive stay fp32, the rest
int8, with k found by bisection: the fewest float layers whose drop on the validation split is at
most P (assuming that keeping more layers float never costs accuracy). Every step builds the plan
as a cfg would (quantize_model honours precision=, an int8 conv after a float one quantizes its
input) and calibrates it, so the figure it stops at is what the written cfg gives; plan.cfg is
evaluated once more after writing. With --int4 the same search then chooses how many of the int8
convs stay int8 rather than precision=int4 (4-bit weights, 8-bit activations; most 4-bit-sensitive
kept int8 first), and with --sparse24 how many eligible convs stay dense (most 2:4-sensitive
first), each on top of the steps before and within the same P. The
result is compared with the rule of thumb that keeps the first conv and the head convs float.
"""
from __future__ import annotations

import copy
import json

import torch

from models import Darknet
from models.cfg import save_cfg
from models.layers import ConvBNAct
from models.weights import load_model, save_checkpoint
from models.sparse24 import can_be_24, layer_conv, mask_24
from quantize.calibrate import METHODS, calibrate
from quantize.config import QuantConfig, QuantMode
from quantize.modules import ActQuant, QuantConvBNAct
from quantize.calibrate import calibration_batches
from quantize.qat import INTEGER, quantize_model
from utils.cli import friendly_errors
from utils.datasets import DataError, create_dataloader, parse_data_cfg
from utils.errors import OptionError
from utils.evaluate import evaluate_model, headline
from utils.files import atomic_write_text
from utils.log import LOGGER
from utils.options import Parser, add_shared, keyword_options, non_negative_float, one_size
from utils.plots import pyplot, save_figure
from utils.runs import increment_path
from utils.torch_utils import select_device


class Scorer:
    """The headline score (mAP@0.5, else mIoU) of a model on fixed batches, in points."""

    def __init__(self, batches, names, seg_names):
        self.batches, self.names, self.seg_names = batches, names, seg_names

    def __call__(self, model):
        m = evaluate_model(model.eval(), self.batches, self.names, verbose=False, plots=False,
                           seg_names=self.seg_names)
        return 100 * next(iter(headline(m).values()))


def preload(source, nc, n, img_size, batch_size, workers, seg_nc):
    """The first n images of a list with labels (and masks), as evaluation batches in memory."""
    loader, _ = create_dataloader(source, nc, img_size, batch_size, workers=workers,
                                  prefix='subset: ', seg_nc=seg_nc)
    out, seen = [], 0
    for imgs, targets, paths, shapes, masks in loader:
        k = min(n - seen, len(imgs))
        keep = targets[:, 0] < k
        out.append((imgs[:k], targets[keep], paths[:k], shapes[:k],
                    None if masks is None else masks[:k]))
        seen += k
        if seen >= n:
            break
    return out


def conv_layers(model):
    return [i for i, m in enumerate(model.module_list) if isinstance(m, ConvBNAct)]


def int8_alone(qmodel, i):
    """Enable only layer i's weight and output quantization in a calibrated all-int8 model."""
    for m in qmodel.modules():
        if isinstance(m, (QuantConvBNAct, ActQuant)):
            m.enabled = False
    layer = qmodel.module_list[i]
    layer.enabled = True
    if layer.out_quant is not None:
        layer.out_quant.enabled = True
    return qmodel


def calibrated_copy(float_model, batches_calib, method, w_bits=8):
    config = QuantConfig(mode=QuantMode.TENSORRT, w_bits=w_bits)
    qmodel = quantize_model(copy.deepcopy(float_model), config)
    calibrate(qmodel, batches_calib, method)
    return qmodel


def measure(float_model, batches_calib, score, method, int4=False):
    """{layer: {'int8': drop, 'sparse24': drop or None[, 'int4': drop]}} in points, and the
    float score."""
    base = score(float_model)
    qmodel = calibrated_copy(float_model, batches_calib, method)
    q4 = calibrated_copy(float_model, batches_calib, method, 4) if int4 else None
    eligible = can_be_24(float_model)
    rows = {}
    for i in conv_layers(float_model):
        rows[i] = {'int8': round(base - score(int8_alone(qmodel, i)), 3), 'sparse24': None}
        if q4 is not None:
            rows[i]['int4'] = round(base - score(int8_alone(q4, i)), 3)
        if i in eligible:
            w = layer_conv(float_model.module_list[i]).weight
            saved = w.detach().clone()
            with torch.no_grad():
                w.mul_(mask_24(w))
            rows[i]['sparse24'] = round(base - score(float_model), 3)
            with torch.no_grad():
                w.copy_(saved)
        s24 = rows[i]['sparse24']
        LOGGER.info(f"layer {i}: int8 {-rows[i]['int8']:+.2f}, 2:4 "
                    f"{'dense' if s24 is None else f'{-s24:+.2f}'} points")
    return base, rows


def plan_model(float_model, floats, dense, batches_calib, method, int4=()):
    """The float model with the plan written into its cfg: precision= on every conv (fp32 for
    ``floats``, int4 for ``int4``, int8 else), sparse=1 and 2:4 weights on the eligible convs not
    in ``dense`` (None: no sparse keys), quantized and calibrated as that cfg says."""
    model = copy.deepcopy(float_model)
    eligible = can_be_24(model)
    for i in conv_layers(model):
        precision = 'fp32' if i in floats else 'int4' if i in int4 else 'int8'
        model.blocks[i + 1].options['precision'] = precision
        if dense is not None and i in eligible and i not in dense:
            model.blocks[i + 1].options['sparse'] = '1'
            w = layer_conv(model.module_list[i]).weight
            with torch.no_grad():
                w.mul_(mask_24(w))
    return as_written(model, batches_calib, method)


def as_written(model, batches_calib, method):
    """A float model whose cfg carries precision= keys, quantized and calibrated as they say."""
    if all(model.blocks[i + 1].get('precision') not in INTEGER for i in conv_layers(model)):
        return model
    model = quantize_model(model, QuantConfig(mode=QuantMode.TENSORRT))
    calibrate(model, batches_calib, method)
    return model


def fewest(n, ok):
    """The smallest k in 0..n with ok(k), ok assumed monotone and ok(n) true."""
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def search(float_model, rows, base, score, max_drop, batches_calib, method, sparse24):
    """(float layers, int4 layers, dense layers or None, {plan: drop} tried) of the cheapest
    plan; int4 is searched when the rows have int4 sensitivities."""
    by_int8 = sorted(rows, key=lambda i: -rows[i]['int8'])
    tried = {}

    def drop(floats, dense=None, int4=()):
        key = (tuple(sorted(floats)), None if dense is None else tuple(sorted(dense)),
               tuple(sorted(int4)))
        if key not in tried:
            tried[key] = round(base - score(plan_model(float_model, set(floats), dense,
                                                       batches_calib, method, set(int4))), 3)
            LOGGER.info(f"plan: {len(floats)} float, {len(int4)} int4, "
                        f"{'-' if dense is None else len(dense)} dense: {-tried[key]:+.2f} points")
        return tried[key]

    k = fewest(len(by_int8), lambda k: drop(by_int8[:k]) <= max_drop)
    floats, int4, dense = set(by_int8[:k]), set(), None
    if 'int4' in next(iter(rows.values())):
        by_4 = sorted((i for i in rows if i not in floats), key=lambda i: -rows[i]['int4'])
        e = fewest(len(by_4), lambda e: drop(floats, None, by_4[e:]) <= max_drop)
        int4 = set(by_4[e:])
    if sparse24:
        sparse_rows = {i: r['sparse24'] for i, r in rows.items() if r['sparse24'] is not None}
        by_24 = sorted(sparse_rows, key=lambda i: -sparse_rows[i])
        d = fewest(len(by_24), lambda d: drop(floats, set(by_24[:d]), int4) <= max_drop)
        dense = set(by_24[:d])
    return floats, int4, dense, tried


def rule_of_thumb(model):
    """The usual hand plan: the first conv and the convs feeding each head stay float."""
    convs = conv_layers(model)
    return {convs[0]} | {j - 1 for j in model.head_layers if j - 1 in convs}


def plot(rows, path):
    plt = pyplot()
    layers = list(rows)
    fig, ax = plt.subplots(figsize=(max(6, 0.3 * len(layers)), 3.5))
    x = torch.arange(len(layers)).numpy()
    ax.bar(x - 0.2, [rows[i]['int8'] for i in layers], 0.4, label='int8 alone')
    ax.bar(x + 0.2, [rows[i]['sparse24'] or 0 for i in layers], 0.4, label='2:4 alone')
    ax.set_xticks(x, [str(i) for i in layers], fontsize=7)
    ax.set_xlabel('layer')
    ax.set_ylabel('points lost')
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path)


@keyword_options
def run(weights='weights/yolov3-mini.pt', cfg='', data='data/shapes.data', calib=256,
        method='mse', subset=128, max_drop=None, sparse24=False, int4=False, img_size=320,
        batch_size=16,
        device='', workers=2, project='runs/sensitivity', name='exp', exist_ok=False):
    if calib < 1 or subset < 1:
        raise OptionError(f'--calib and --subset are numbers of images, 1 or more; got '
                          f'{calib} and {subset}')
    if max_drop is not None and max_drop < 0:
        raise OptionError(f'--max-drop is in points, 0 or more; got {max_drop}')
    device = select_device(device)
    d = parse_data_cfg(data)
    if 'valid' not in d:  # read last, after minutes of measuring: refuse now
        raise DataError(f"{data}: no 'valid=' entry (the validation split --max-drop checks)")
    nc, names, seg_names = len(d['names']), d['names'], d.get('seg_names')
    model = load_model(weights, cfg or None).float().to(device).eval()
    save_dir = increment_path(project, name, exist_ok)  # an unwritable folder fails before work
    batches_calib = calibration_batches(d['train'], nc, calib, img_size, batch_size, device,
                                        workers)
    subset_batches = preload(d['train'], nc, subset, img_size, batch_size, workers, model.seg_nc)
    base, rows = measure(model, batches_calib, Scorer(subset_batches, names, seg_names), method,
                         int4)
    report = {'weights': str(weights), 'method': method, 'calib': calib, 'subset': subset,
              'float_subset': round(base, 3), 'layers': {str(i): r for i, r in rows.items()}}
    plot(rows, save_dir / 'sensitivity.png')
    if max_drop is not None:
        val = preload(d['valid'], nc, 10 ** 9, img_size, batch_size, workers, model.seg_nc)
        score = Scorer(val, names, seg_names)
        val_base = score(model)
        floats, int4s, dense, tried = search(model, rows, val_base, score, max_drop,
                                             batches_calib, method, sparse24)
        report['plan'] = write_plan(model, (floats, int4s, dense), val_base, score,
                                    batches_calib, method, save_dir, weights)
        rule = rule_of_thumb(model)
        report['rule_of_thumb'] = {
            'float': sorted(rule), 'int8_layers': len(conv_layers(model)) - len(rule),
            'drop': round(val_base - score(plan_model(model, rule, None, batches_calib, method)),
                          3)}
        report['tried'] = [{'float': len(k[0]), 'dense': None if k[1] is None else len(k[1]),
                            'int4': len(k[2]), 'drop': v} for k, v in tried.items()]
    atomic_write_text(save_dir / 'sensitivity.json', json.dumps(report, indent=2))
    LOGGER.info(f'saved {save_dir / "sensitivity.json"}')
    return report


def write_plan(model, chosen, val_base, score, batches_calib, method, save_dir, weights):
    """plan.cfg and plan.pt (the float weights, 2:4-masked where the plan says), verified by
    building the cfg as written and evaluating it on the validation split. ``chosen``: the
    float, int4 and dense (or None) layers."""
    floats, int4, dense = chosen
    planned = plan_model(model, floats, dense, batches_calib, method, int4)
    save_cfg(planned.blocks, save_dir / 'plan.cfg')
    float_weights = copy.deepcopy(model)
    for i in conv_layers(model):
        if planned.blocks[i + 1].options.get('sparse') == '1':
            w = layer_conv(float_weights.module_list[i]).weight
            with torch.no_grad():
                w.mul_(mask_24(w))
    rebuilt = Darknet(save_dir / 'plan.cfg')
    rebuilt.load_state_dict(float_weights.state_dict())
    save_checkpoint({'cfg': rebuilt.cfg_text, 'model': rebuilt.state_dict()},
                    save_dir / 'plan.pt')
    verified = as_written(rebuilt.to(next(model.parameters()).device).eval(), batches_calib,
                          method)
    drop = round(val_base - score(verified), 3)
    n = len(conv_layers(model))
    plan = {'cfg': str(save_dir / 'plan.cfg'), 'pt': str(save_dir / 'plan.pt'),
            'float': sorted(floats), 'int4': sorted(int4),
            'int8_layers': n - len(floats) - len(int4),
            'sparse_layers': 0 if dense is None else len(can_be_24(model)) - len(dense),
            'float_val': round(val_base, 3), 'drop': drop}
    LOGGER.info(f"plan: {plan['int8_layers']} of {n} convs int8, {len(int4)} int4, "
                f"{plan['sparse_layers']} 2:4, "
                f'{-drop:+.2f} points on the validation split; {plan["cfg"]} (from {weights})')
    return plan


def parser():
    p = Parser(prog='quantize/sensitivity.py', description=__doc__.splitlines()[0])
    add_shared(p, weights='weights/yolov3-mini.pt', cfg='', data='data/shapes.data',
               img_size=320, batch_size=16, device='', workers=2, project='runs/sensitivity',
               name='exp', exist_ok=False)
    p.add_argument('--calib', type=int, default=256, help='calibration images (training split)')
    p.add_argument('--method', default='mse', choices=METHODS, help='PTQ calibrator')
    p.add_argument('--subset', type=int, default=128,
                   help='training images the per-layer sensitivities are measured on')
    p.add_argument('--max-drop', type=non_negative_float, default=None,
                   help='write the cheapest plan within this many points (validation split)')
    p.add_argument('--sparse24', action='store_true',
                   help='with --max-drop: also choose 2:4 layers (sparse=1)')
    p.add_argument('--int4', action='store_true',
                   help='also measure 4-bit weights per layer; with --max-drop: also choose '
                        'precision=int4 (W4A8) layers')
    return p


def parse_opt(argv=None):
    opt = parser().parse_args(argv)
    opt.img_size = one_size(opt.img_size, 320)
    return opt


@friendly_errors
def main(argv=None):
    run(**vars(parse_opt(argv)))


if __name__ == '__main__':
    main()
