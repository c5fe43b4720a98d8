"""Compress a detector end to end with one command, and say what each step bought.

    python3 compress.py                                   # yolov3-mini on the built-in dataset
    python3 compress.py --cfg yolov3.cfg --weights yolov3.weights --data my.data --keep-bflops 0.5
    python3 compress.py --skip qat --KDstr 1 --name kd1   # any stage can be skipped
    python3 compress.py --cfg cfg/yolov3-tiny.cfg --weights weights/yolov3-tiny.weights \
        --data data/coco128.data --images site/photos --keep-bflops 0.7 --img-size 416

Stages, each calling the toolkit's own entry points (train.run, prune.runner.run_method,
export.run, test.run): baseline evaluation -> sparse training (-sr, aimed at the cut that leaves
--keep-bflops of the BFLOPs) -> pruning (--method at that cut, or --percent; --shortcuts) ->
fine-tuning (distilled from the baseline with --KDstr 1-6; off by default) -> 2:4 structured
sparsity (--sparse24: magnitude masks, fine-tuned the same way; off by default) -> QAT
(--quantized, 0 = none; keeps the 2:4 masks) -> export (int8 Q/DQ ONNX for onnxruntime and
TensorRT, darknet) -> latency (torch and onnxruntime, batch 1). Everything goes to
runs/compress/<name>/; state.json records finished stages, so rerunning the same command after a
crash or Ctrl-C continues with the stage it was in (a training stage from its last epoch).
report.md / report.json / plots at the end.

With --images (photos without labels, compress/unlabelled.py) the dense model is the teacher:
pruning measures its cuts on the photos (--method search), the fine-tune and QAT train on the
teacher's outputs alone, and each stage is also scored by its agreement with the teacher on
photos held out from training.
"""
from __future__ import annotations

import time

from compress.options import CompressOptions, check_inputs
from compress.stages import RUNNERS, STAGES, Run, distillation, find_run, stage_gammas
from utils.cli import friendly_errors
from utils.compress_report import write_report
from utils.log import LOGGER
from utils.options import Parser

__all__ = ['STAGES', 'CompressOptions', 'Run', 'distillation', 'main', 'parse_opt', 'parser',
           'run']


def run(**kw):
    """Compress with CompressOptions' fields as keywords; returns the report. A misspelt option
    is an OptionError naming the closest valid one."""
    opt = CompressOptions.from_kwargs(**kw).check().to_dict()
    check_inputs(opt)
    skip = (set(opt['skip']) | ({'qat'} if not opt['quantized'] else set()) |
            ({'sparse24'} if not opt['sparse24'] else set()) |
            ({'sparse'} if opt['images'] else set()))  # sparse training needs labels
    r = find_run(opt)
    r.save()
    t0 = time.time()
    for stage in STAGES:
        if stage in r.state['done'] or (stage in skip and stage != 'baseline'):
            continue
        LOGGER.info(f'--- compress: {stage} ---')
        RUNNERS[stage](r)
    r.state['minutes'] = round(r.state.get('minutes', 0) + (time.time() - t0) / 60, 1)
    r.save()
    return write_report(r.dir, r.state, stage_gammas(r.state))


def parser():
    return CompressOptions.add_fields(Parser(prog='compress.py',
                                             description=__doc__.splitlines()[0]))


def parse_opt(argv=None):
    return parser().parse_args(argv)


@friendly_errors
def main(argv=None):
    run(**vars(parse_opt(argv)))
