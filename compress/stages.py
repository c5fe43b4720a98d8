"""compress.py's stages, each calling the toolkit's own entry points, and the run folder whose
state.json lets a rerun of the same command continue where it stopped."""
from __future__ import annotations

import importlib.util
import json
import os
import tempfile
from pathlib import Path

import numpy as np

import export
import train
from models.darknet import is_quantized
from models.weights import darknet_cfg, load_checkpoint
from prune.cost import percent_for_bflops
from prune.methods import METHODS
from prune.runner import run_method
from prune.sparsity import sparse_convs
from quantize import graphs
from quantize.loader import load_for_inference, load_model
from quantize.qdq import dequantized_model
from compress.unlabelled import agreement_figures, split_images, teacher_options
from utils.evaluate import evaluate_on, headline
from utils.files import atomic_write_text
from utils.log import LOGGER
from utils.runs import increment_path, project_dir
from utils.timing import interleaved, torch_runners
from utils.torch_utils import select_device

# the fine-tune's hyp with --images: a pruned pretrained model has more to recover than one cut
# after sparse training
RECOVER_HYP = str(Path(__file__).resolve().parents[1] / 'data' / 'hyp.recover.yaml')
STAGES = ('baseline', 'sparse', 'prune', 'finetune', 'sparse24', 'qat', 'export', 'latency')


class Run:
    """The run folder and its state.json (written atomically after every stage)."""

    def __init__(self, save_dir, opt, state=None):
        self.dir, self.opt = Path(save_dir), opt
        self.state = state or {'opt': opt, 'done': {}, 'rows': []}
        self.cache = False if opt['no_cache'] else None  # None: train.py decides

    @property
    def path(self):
        return self.dir / 'state.json'

    def save(self):
        atomic_write_text(self.path, json.dumps(self.state, indent=2))

    def done(self, stage, info, *rows):
        self.state['done'][stage] = info
        self.state['rows'] += [r for r in rows if r]
        self.save()

    def latest_weights(self):
        """(cfg, weights) the next stage starts from: the last stage that made a model."""
        for stage in reversed(STAGES):
            info = self.state['done'].get(stage) or {}
            if 'weights' in info:
                return info['cfg'], info['weights']
        return self.opt['cfg'], self.opt['weights']  # the baseline stage records these


def find_run(opt):
    """The unfinished run of this exact command, or a new folder."""
    project, name = project_dir(opt['project']), opt['name']
    for d in sorted(project.glob(f'{name}*'), key=os.path.getmtime, reverse=True):
        f = d / 'state.json'
        if f.is_file():
            state = json.loads(f.read_text())
            if state['opt'] == opt and 'latency' not in state['done']:
                LOGGER.info(f"resuming {d}: done {', '.join(state['done']) or 'nothing'}")
                return Run(d, opt, state)
    return Run(increment_path(project, name, False), opt)


def evaluate(weights, opt, run, tag, cfg=None):
    model = load_for_inference(str(weights), darknet_cfg(weights, cfg),
                               select_device(opt['device']))
    m = evaluate_on(model, opt['data'], opt['img_size'], opt['batch_size'], opt['workers'],
                    plots=False, verbose=False, save_dir=run.dir / f'eval_{tag}')
    return headline(m)


def model_row(stage, cfg, weights, opt, run, metrics=None, scored=None):
    """A report row: size and cost of the model, the metrics of ``scored`` (the model itself, or
    a graph exported from it) and, with --images, its agreement with the teacher."""
    model = load_model(weights, darknet_cfg(weights, cfg))
    info = model.info(opt['img_size'])
    int8 = is_quantized(model)
    scored = scored or weights
    row = {'stage': stage, 'cfg': str(cfg), 'weights': str(weights), 'params': info['params'],
           'bflops': round(info['bflops'], 4), 'int8': int8,
           'size_mb': round(info['params'] * (1 if int8 else 4) / 1e6, 3)}
    row |= metrics or evaluate(scored, opt, run, stage, cfg)
    if opt['images'] and stage != 'baseline':
        row |= agreement_figures(scored, cfg, run)
    return row


def train_stage(run, stage, cfg, weights, img_size=0, **kw):
    """train.run in <run>/<stage>/ at img_size (default --img-size; evaluated at --img-size),
    continuing from its last.pt after an interruption. Returns (last.pt, its mAP from train.py's
    final evaluation, or None if it was not run)."""
    opt = run.opt
    size = img_size or opt['img_size']
    last = run.dir / stage / 'weights' / 'last.pt'
    ckpt = load_checkpoint(last) if last.is_file() else {}
    if ckpt.get('optimizer') is not None:  # interrupted: go on from its last epoch
        if ckpt['epoch'] + 1 >= ckpt['opt']['epochs']:
            return last, None  # it had finished
        m = train.run(resume=str(last))
    else:
        m = train.run(cfg=str(cfg), weights=str(weights), data=opt['data'],
                      img_size=[size, size, opt['img_size']], batch_size=opt['batch_size'],
                      device=opt['device'], workers=opt['workers'], project=str(run.dir),
                      name=stage, exist_ok=True, notest=True, cache_images=run.cache, **kw)
    return last, headline(m)


def write_cfg_of(weights, path):
    """A .pt holds its cfg; later stages and darknet tools want it as a file."""
    atomic_write_text(path, load_checkpoint(weights)['cfg'])
    return path


def baseline(run):
    opt = run.opt
    cfg = opt['cfg'] or write_cfg_of(opt['weights'], run.dir / 'baseline.cfg')
    row = model_row('baseline', cfg, opt['weights'], opt, run)
    run.done('baseline', {'cfg': str(cfg), 'weights': opt['weights']}, row)


def sparse(run):
    opt = run.opt
    cfg, weights = run.latest_weights()
    aimed = opt['keep_bflops'] and opt['method'] != 'layer' and opt['prune_mode'] != 2
    aim = {'sr_target': opt['keep_bflops'], 'sr_fade': opt['sr_fade'],
           'sr_round': opt['round']} if aimed else {}
    last, metrics = train_stage(run, 'sparse', cfg, weights, img_size=opt['img_size_sparse'],
                                epochs=opt['epochs_sparse'], hyp=opt['hyp_sparse'],
                                sr=True, s=opt['s'], prune=opt['prune_mode'],
                                sr_flops=opt['sr_flops'], **aim)
    row = model_row('sparse', cfg, last, opt, run, metrics)
    run.done('sparse', {'cfg': cfg, 'weights': str(last),
                        'gamma_hist': str(run.dir / 'sparse' / 'gamma_hist.png')}, row)


def prune(run):
    opt = run.opt
    cfg, weights = run.latest_weights()
    method = METHODS[opt['method']]
    kw = method.resolve(**{k: opt[k] for k in method.options if k in opt})
    if opt['keep_bflops'] and 'percent' in kw:
        kw['percent'] = percent_for_keep(method, kw, cfg, weights, opt)
    if 'images' in kw:  # measured on the training photos, not on the held-out ones
        kw['images'] = [split_images(opt, run.dir)[0]]
    report = run_method(opt['method'], **kw,
                        cfg=darknet_cfg(weights, cfg) or '',
                        data=opt['data'], weights=weights, img_size=opt['img_size'],
                        batch_size=opt['batch_size'], device=opt['device'],
                        workers=opt['workers'], latency_runs=0, project=str(run.dir),
                        name='prune', exist_ok=True)
    row = model_row('prune', report['cfg'], report['pt'], opt, run,
                    {k: v for k, v in report['pruned'].items() if k in ('map50', 'map50_95',
                                                                         'miou')})
    run.done('prune', {'cfg': report['cfg'], 'weights': report['pt'],
                       'channels': report['channels']}, row)


def percent_for_keep(method, kw, cfg, weights, opt):
    """--keep-bflops: the method's smallest percent that leaves at most that share."""
    model = load_model(weights, darknet_cfg(weights, cfg))
    pct = percent_for_bflops(model.float().eval(), opt['keep_bflops'], opt['img_size'],
                             lambda m, p: method.plan(m, **(kw | {'percent': p})))
    LOGGER.info(f"--keep-bflops {opt['keep_bflops']}: {opt['method']} --percent {pct}")
    return pct


def distillation(run):
    """train.run's options for distillation from the baseline (none with --KDstr 0; from its
    outputs alone with --images)."""
    opt, base = run.opt, run.state['done']['baseline']
    if opt['images']:
        return teacher_options(run)
    return {'t_cfg': base['cfg'], 't_weights': base['weights'], 'KDstr': opt['KDstr'],
            'kd_weight': opt['kd_weight']} if opt['KDstr'] else {}


def finetune(run, stage='finetune', epochs='epochs_finetune', hyp='hyp_finetune', **kw):
    opt = run.opt
    cfg, weights = run.latest_weights()
    hyp_file = opt[hyp] or (RECOVER_HYP if opt['images'] and stage == 'finetune' else '')
    last, metrics = train_stage(run, stage, cfg, weights, epochs=opt[epochs], hyp=hyp_file,
                                **distillation(run), **kw)
    row = model_row(stage, cfg, last, opt, run, metrics)
    run.done(stage, {'cfg': cfg, 'weights': str(last)}, row)


def sparse24(run):
    finetune(run, 'sparse24', 'epochs_sparse24', 'hyp_sparse24', sparse24=True)


def qat(run):
    opt = run.opt
    cfg, weights = run.latest_weights()
    teacher = teacher_options(run) if opt['images'] else {}
    last, metrics = train_stage(run, 'qat', cfg, weights, epochs=opt['epochs_qat'],
                                quantized=opt['quantized'],
                                sparse24='sparse24' in run.state['done'], **teacher)
    row = model_row('qat', cfg, last, opt, run, metrics)
    run.done('qat', {'cfg': cfg, 'weights': str(last)}, row)


def export_stage(run):
    opt = run.opt
    cfg, weights = run.latest_weights()
    common = {'weights': str(weights), 'img_size': (opt['img_size'],), 'project': str(run.dir),
              'exist_ok': True}
    files = {'darknet': export.run(fmt='darknet', name='export', **common)}
    int8 = is_quantized(load_model(weights, darknet_cfg(weights, cfg)))
    # the flavour export.py's int8 check finds exact in onnxruntime here (tensorrt's graph
    # first, then this CPU's onnxruntime one)
    files['onnx_onnxruntime'] = export.run(fmt='onnx', name='export/onnxruntime', dynamic=True,
                                           **common)
    if int8 and opt['quantized'] == 3:
        files['onnx_tensorrt'] = export.run(fmt='onnx', name='export/tensorrt', **common)
    onnx_path = files['onnx_onnxruntime'][0]
    row = model_row('export', cfg, weights, opt, run, evaluate(onnx_path, opt, run, 'onnx'),
                    scored=onnx_path)
    row.update(stage='export (onnxruntime)', weights=onnx_path,
               size_mb=round(Path(onnx_path).stat().st_size / 1e6, 3))
    rows = [row]
    if openvino_here():
        files['openvino'] = export.run(fmt='openvino', name='export/openvino', **common)
        xml, bin_ = files['openvino']
        row = model_row('export', cfg, weights, opt, run, evaluate(xml, opt, run, 'openvino'),
                        scored=xml)
        row.update(stage='export (openvino)', weights=xml,
                   size_mb=round(Path(bin_).stat().st_size / 1e6, 3))
        rows.append(row)
    run.done('export', {'files': files, 'onnx': onnx_path}, *rows)


def openvino_here():
    """Whether OpenVINO is installed: then the export gets an IR and the latency a column."""
    return importlib.util.find_spec('openvino') is not None


def latency(run):
    """Batch-1 latency of each distinct network: torch eager fp32 (the dequantized weights for
    int8 rows), onnxruntime (fp32, or the int8 Q/DQ graph for int8 rows) and, where installed,
    OpenVINO (fp32, or the int8 IR of --qdq openvino), all taking turns
    (utils/timing.py's interleaved timer: the machine's speed drifts between stages)."""
    opt, device, size = run.opt, select_device('cpu'), run.opt['img_size']
    runners = []
    with tempfile.TemporaryDirectory() as tmp:
        for row in run.state['rows']:
            if row['stage'].startswith('export') or row['stage'] == 'sparse':
                continue  # the same network as the row before it
            model = load_model(row['weights'], darknet_cfg(row['weights'], row['cfg'])
                               ).float().eval()
            float_model = dequantized_model(model) if row['int8'] else model
            _, eager = next(torch_runners(float_model, size, [1], device, False))
            runners.append(((row, 'latency_torch_ms'), eager))
            runners += [((row, 'latency_ort_ms'), make)
                        for _, make in graphs.onnx_runners(model, size, [1], device, tmp)]
            if openvino_here():
                runners += [((row, 'latency_ov_ms'), make)
                            for _, make in graphs.openvino_runners(model, size, [1], tmp)]
        for ((row, key), _), (median, _) in zip(runners, interleaved(
                runners, opt['latency_runs'], 3)):
            row[key] = round(median, 2)
    run.done('latency', {})


RUNNERS = {'baseline': baseline, 'sparse': sparse, 'prune': prune, 'finetune': finetune,
           'sparse24': sparse24, 'qat': qat, 'export': export_stage, 'latency': latency}


def stage_gammas(state):
    """|gamma| of the prunable BN channels before and after sparse training, for the report."""
    out, mode = {}, state['opt']['prune_mode']
    for stage in ('baseline', 'sparse'):
        info = state['done'].get(stage)
        if info:
            w = info['weights']
            model = load_model(w, darknet_cfg(w, info['cfg']))
            out[stage] = np.concatenate([model.module_list[i].bn.weight.detach().abs().numpy()
                                         for i in sparse_convs(model, mode)])
    return out
