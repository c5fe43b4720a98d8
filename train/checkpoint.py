"""What a run keeps on disk and reads back: last.pt / best.pt, results.csv, and the checks a
checkpoint's training state passes before --resume trusts it."""
from __future__ import annotations

import csv
import io
import os
import time
from pathlib import Path

import torch

from models.weights import WeightsError, load_checkpoint, save_checkpoint
from train.options import TrainOptions
from utils.errors import OptionError
from utils.files import atomic_write_text
from utils.hyp import check as check_hyp
from utils.log import LOGGER
from utils.optim import loaded_state_problem
from utils.runs import project_dir
from utils.torch_utils import unwrap


def resolve_resume(resume, project):
    """--resume with no path: the newest last.pt under the project of a run that has not
    finished (its last epoch is not its final one); a path is taken as given."""
    if resume is not True and resume != '':
        return Path(resume)
    unfinished = []
    for last in project_dir(project).glob('*/weights/last.pt'):
        try:
            ckpt = load_checkpoint(last)
        except WeightsError:
            continue
        opt = ckpt.get('opt') or {}
        if ckpt.get('optimizer') is not None and ckpt.get('epoch', 0) + 1 < opt.get('epochs', 0):
            unfinished.append(last)
    if not unfinished:
        raise WeightsError(f'--resume: no unfinished run (a last.pt before its final epoch) '
                           f'under {project}')
    found = max(unfinished, key=os.path.getmtime)
    LOGGER.info(f'--resume: the newest unfinished run under {project} is {found}')
    return found


def checkpoint(model, ema, optimizer, scheduler, scaler, epoch, best, opt, names, hooks,
               metrics):
    return {'cfg': unwrap(model).cfg_text, 'model': unwrap(model).state_dict(),
            'quant': getattr(unwrap(model), 'quant_config', None),
            'ema': ema.ema.state_dict(), 'ema_updates': ema.updates,
            'optimizer': optimizer.state_dict(), 'scheduler': scheduler.state_dict(),
            'scaler': scaler.state_dict() if scaler else None, 'epoch': epoch,
            'best_fitness': best, 'opt': opt, 'names': names, 'metrics': metrics,
            'hooks': {h.name: h.state() for h in hooks}}


def strip_checkpoint(path):
    """Keep only what inference needs: cfg, EMA weights in fp16, names, metrics."""
    ckpt = load_checkpoint(path)
    state = {k: (v.half() if v.dtype == torch.float32 and not _is_range(k) else v)
             for k, v in (ckpt.get('ema') or ckpt['model']).items()}
    save_checkpoint({'cfg': ckpt['cfg'], 'model': state, 'names': ckpt.get('names'),
                     'quant': ckpt.get('quant'),
                     'metrics': ckpt.get('metrics'), 'epoch': ckpt.get('epoch'),
                     'opt': ckpt.get('opt')}, path)


def _is_range(key):
    """Observed quantization ranges stay fp32: fp16 would move every scale."""
    return key.endswith(('observer.lo', 'observer.hi'))


def earlier_results(path, epoch):
    """results.csv's rows before ``epoch``; a file that cannot be read is set aside (renamed,
    said once) rather than cost the epoch that is being written."""
    if not path.exists():
        return []
    try:
        with open(path, newline='') as f:
            return [r for r in csv.DictReader(f)
                    if str(r.get('epoch', '')).isdigit() and int(r['epoch']) < epoch]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        aside = path.with_name(f'{path.name}.unreadable-{int(time.time())}')
        path.replace(aside)
        LOGGER.warning(f'WARNING: {path} cannot be read ({type(e).__name__}); set aside as '
                       f'{aside.name}, a new one starts at epoch {epoch + 1}')
        return []


def append_results(path, row):
    """Add the epoch's row to results.csv, dropping rows of this epoch or later (left by a run
    killed after writing them, which --resume redoes); the file is replaced whole."""
    rows = earlier_results(path, row['epoch'])
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(row), restval='', extrasaction='ignore')
    writer.writeheader()
    writer.writerows([*rows, row])
    atomic_write_text(path, text.getvalue())


def resumable_options(ckpt, path):
    """The options a last.pt was trained with, once its training state is seen to be whole:
    numbers that are numbers, an epoch inside the run, an optimizer with its groups, an EMA.
    A checkpoint that fails is refused now, not after an epoch of work."""
    if ckpt.get('optimizer') is None or 'opt' not in ckpt:
        raise WeightsError(f'{path}: holds no training state (a stripped best.pt or an '
                           'exported checkpoint); resume from its last.pt')
    saved = ckpt['opt']
    if not isinstance(saved, dict):
        raise WeightsError(f'{path}: its saved options are not a mapping')
    missing = [k for k in TrainOptions.option_names() if k not in saved and k != 'extra']
    if missing:  # a default in its place would make it another run
        raise WeightsError(f"{path}: its saved options lack {', '.join(missing[:3])} (written "
                           'by another version, or damaged)')
    try:
        opt = TrainOptions.from_dict(saved).check()
        check_hyp(saved.get('hyp_values'), f'{path} hyp_values')
    except (OptionError, TypeError, AttributeError) as e:
        raise WeightsError(f'{path}: its saved options: {e}') from None
    epoch = ckpt.get('epoch')
    if isinstance(epoch, bool) or not isinstance(epoch, int) or not 0 <= epoch < opt.epochs:
        raise WeightsError(f'{path}: epoch {epoch!r} is not one of the run\'s {opt.epochs} '
                           'epochs (a finished run resumes nothing; a number out of range is a '
                           'damaged file)')
    groups = ckpt['optimizer'].get('param_groups') if isinstance(ckpt['optimizer'], dict) \
        else None
    if not groups or not isinstance(ckpt['optimizer'].get('state'), dict):
        raise WeightsError(f'{path}: its optimizer state has no parameter groups')
    for key in ('ema', 'scheduler', 'model'):
        if not isinstance(ckpt.get(key), dict):
            raise WeightsError(f'{path}: no {key} state to resume from')
    best = ckpt.get('best_fitness')
    if isinstance(best, bool) or not isinstance(best, (int, float)) or \
            not (best == -1 or 0 <= best <= 1):  # -1: nothing eligible evaluated yet
        raise WeightsError(f'{path}: best_fitness {best!r} is not a fitness (0..1, or -1)')
    return opt


def restore(resumed, source, model, optimizer, scheduler, scaler=None, ema=None):
    """Load a checkpoint's training state into a run's objects; a part that does not fit (a
    structure torch refuses, or values a step could not use) is a WeightsError naming it."""
    saved = resumed['optimizer'].get('state', {})
    if not all(isinstance(e, dict) and all(isinstance(t, torch.Tensor) for t in e.values())
               for e in saved.values()):
        raise WeightsError(f'{source}: its optimizer state holds values that are not tensors')
    fresh = [dict(g) for g in optimizer.param_groups]
    lacking = set(scheduler.state_dict()) - set(resumed['scheduler'])
    if lacking:
        raise WeightsError(f"{source}: its schedule lacks {', '.join(sorted(lacking))}")
    parts = [('model', model), ('optimizer', optimizer), ('scheduler', scheduler)]
    parts += [('scaler', scaler)] if scaler else []
    parts += [('ema', ema.ema)] if ema else []
    for key, target in parts:
        try:
            target.load_state_dict(resumed[key])
        except (KeyError, ValueError, RuntimeError, TypeError, IndexError, AttributeError) as e:
            lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
            why = ' '.join(lines[:2])[:200] if lines else type(e).__name__
            raise WeightsError(f'{source}: its {key} state does not fit this run ({why})') \
                from None
    for key in ('model', 'ema'):
        bad = next((k for k, t in resumed[key].items() if isinstance(t, torch.Tensor) and
                    t.is_floating_point() and not torch.isfinite(t).all()), None)
        if bad:
            raise WeightsError(f'{source}: its {key} state holds NaN or infinity ({bad})')
    problem = loaded_state_problem(optimizer, scheduler, fresh)
    if problem:
        raise WeightsError(f'{source}: {problem}')
    if scheduler.last_epoch != resumed['epoch'] + 1:  # one schedule step per epoch
        raise WeightsError(f"{source}: its schedule is at epoch {scheduler.last_epoch}, the "
                           f"checkpoint at {resumed['epoch'] + 1}")
    if ema:
        updates = resumed.get('ema_updates')
        if isinstance(updates, bool) or not isinstance(updates, int) or updates < 0:
            raise WeightsError(f'{source}: ema_updates={updates!r} is not a count')
        steps = [float(s['step']) for s in optimizer.state.values() if 'step' in s]
        if any(not (0 <= v <= updates and v.is_integer()) for v in steps):
            raise WeightsError(f'{source}: an optimizer step count outside the {updates} steps '
                               'the run has taken')
        ema.updates = updates
