"""--resume of a damaged last.pt: its training state is checked before the first batch, and a
results.csv that cannot be read is set aside, never a reason to lose an epoch."""
import copy
import math
import re

import pytest
import torch

import train
from models.weights import WeightsError, load_checkpoint, save_checkpoint
from tests.bad_input import changed, run_main
from tests.conftest import _built
from utils.errors import ToolkitError


SMALL_CFG = """[net]
width=64
height=64
channels=3

[convolutional]
batch_normalize=1
filters=8
size=3
stride=2
pad=1
activation=leaky

[convolutional]
batch_normalize=1
filters=16
size=3
stride=2
pad=1
activation=leaky

[convolutional]
filters=33
size=1
stride=1
pad=1
activation=linear

[yolo]
mask=0,1,2
anchors=10,10, 20,20, 40,40
classes=6
num=3
"""


@pytest.fixture(scope='module')
def unfinished(tiny_data, tmp_path_factory):
    """A run of a small network stopped after epoch 1 of 2: its last.pt."""
    root = tmp_path_factory.mktemp('resume')
    (root / 'small.cfg').write_text(SMALL_CFG)
    train.run(cfg=str(root / 'small.cfg'), data=str(tiny_data), epochs=1, batch_size=8,
              img_size=[64], workers=0, notest=True, project=str(root), name='run')
    last = root / 'run' / 'weights' / 'last.pt'
    ckpt = load_checkpoint(last)
    ckpt['opt']['epochs'] = 2  # as if stopped after its first of two epochs
    save_checkpoint(ckpt, last)
    return last


def damaged(unfinished, tmp_path, edit):
    ckpt = copy.deepcopy(load_checkpoint(unfinished))
    edit(ckpt)
    path = tmp_path / 'run' / 'weights' / 'last.pt'
    path.parent.mkdir(parents=True)
    save_checkpoint(ckpt, path)
    return path


def other_model(ckpt):
    ckpt['model'] = _built('yolov3-tiny').state_dict()


def no_groups(ckpt):
    ckpt['optimizer']['param_groups'] = []


def text_options(ckpt):
    ckpt['opt']['epochs'] = 'three'


CASES = {
    'no parameter groups': (no_groups, r'optimizer state has no parameter groups'),
    'options that are not numbers': (text_options, r"--epochs 'three': must be a whole"),
    'options that lack one': (lambda c: c['opt'].pop('batch_size'), r'lack batch_size'),
    'an absurd epoch': (lambda c: c.update(epoch=10 ** 9), r'epoch 1000000000 is not one of'),
    'a negative epoch': (lambda c: c.update(epoch=-7), r'epoch -7 is not one of'),
    'epoch -1': (lambda c: c.update(epoch=-1), r'epoch -1 is not one of'),
    'an epoch that is text': (lambda c: c.update(epoch='1'), r"epoch '1' is not one of"),
    'no EMA': (lambda c: c.pop('ema'), r'no ema state'),
    'weights of another model': (other_model, r'its model state does not fit this run'),
    'a best fitness that is text': (lambda c: c.update(best_fitness='x'),
                                    r"best_fitness 'x' is not a fitness"),
    'options that are a list': (lambda c: c.update(opt=[1, 2]), r'not a mapping'),
}


@pytest.mark.parametrize('case', CASES, ids=list(CASES))
def test_a_damaged_last_pt_is_refused_before_any_work(case, unfinished, tmp_path, capsys):
    edit, message = CASES[case]
    path = damaged(unfinished, tmp_path, edit)
    before = sorted(p.name for p in path.parent.parent.rglob('*'))
    code = run_main('train', ['--resume', str(path)])
    err = [ln for ln in capsys.readouterr().err.splitlines() if 'error' in ln]
    assert code == 1 and len(err) == 1 and 'internal error' not in err[0], err
    assert path.name in err[0] and re.search(message, err[0]), err[0]
    assert sorted(p.name for p in path.parent.parent.rglob('*')) == before


def test_a_best_pt_that_is_a_folder_is_refused_before_the_first_epoch(unfinished, tmp_path,
                                                                     capsys):
    path = damaged(unfinished, tmp_path, lambda c: None)
    (path.parent / 'best.pt').mkdir()
    assert run_main('train', ['--resume', str(path)]) == 1
    err = [ln for ln in capsys.readouterr().err.splitlines() if 'error' in ln]
    assert len(err) == 1 and 'best.pt: not a file; a checkpoint is written there' in err[0]
    assert load_checkpoint(path)['epoch'] == 0  # nothing trained


def test_an_unreadable_results_csv_is_set_aside_and_the_epoch_kept(unfinished, tmp_path):
    path = damaged(unfinished, tmp_path, lambda c: None)
    (path.parent.parent / 'results.csv').write_bytes(bytes(range(256)) * 4)
    train.run(resume=str(path))
    folder = path.parent.parent
    assert len(list(folder.glob('results.csv.unreadable-*'))) == 1
    assert load_checkpoint(path)['epoch'] == 1  # the remaining epoch was written
    assert (folder / 'results.csv').read_text().count('\n') == 2  # header + epoch 2


def test_the_checks_leave_a_sound_checkpoint_alone(unfinished):
    opt = train.resumable_options(load_checkpoint(unfinished), unfinished)
    assert opt.epochs == 2
    with pytest.raises(WeightsError):
        bad = load_checkpoint(unfinished)
        bad['optimizer'] = torch.zeros(1)
        train.resumable_options(bad, unfinished)


MUTATIONS = 500


def tensor_paths(ckpt):
    """(path, value) of the checkpoint's entries worth damaging: numbers, text, lists, dicts
    and a sample of tensors (model, EMA, optimizer moments)."""
    out = []

    def walk(v, path):
        out.append((path, v))
        if isinstance(v, dict):
            keys = list(v)
            if path and path[-1] in ('model', 'ema', 'state') and len(keys) > 6:
                keys = keys[:3] + keys[-3:]  # a sample: the rest are alike
            for k in keys:
                walk(v[k], (*path, k))
        elif isinstance(v, list) and not (path and path[-1] == 'params'):
            for k, item in enumerate(v[:4]):
                walk(item, (*path, k))
    walk(ckpt, ())
    return [(p, v) for p, v in out if p and p[0] not in ('cfg', 'names', 'metrics')]


def damage(value, rng):
    """A value of another type, a number out of range (negative, NaN), or a tensor of the
    wrong shape (the categories of damage; a valid value changed is a different run)."""
    if isinstance(value, torch.Tensor) and value.ndim:
        return rng.choice([value.flatten()[:-1] if value.numel() > 1 else value[:0],
                           torch.full_like(value, float('nan')) if value.is_floating_point()
                           else value.float(), 'x'])
    options = ['x', None, [], {}, True, 1.5, float('nan'), -7, -10 ** 9]
    if value is None:  # an option left to its default: True may be a valid choice of it
        options.remove(True)
    return rng.choice([o for o in options if type(o) is not type(value) or
                       (isinstance(o, (int, float)) and not isinstance(o, bool) and
                        not o >= 0)])  # of its own type: only below 0, or NaN


def resumed_state(ckpt, path):
    """What --resume restores before its first batch, as comparable plain values."""
    from models import Darknet
    from utils.optim import build_optimizer, lr_lambda
    from utils.torch_utils import ModelEMA
    from utils.torch_utils import select_device
    # as train.run resumes: the path and this machine's workers replace the saved ones
    opt = train.resumable_options(ckpt, path).replace(resume=str(path), workers=None)
    select_device(opt.device)
    model = Darknet(ckpt['cfg'])
    hyp = ckpt['opt']['hyp_values']
    optimizer = build_optimizer(model, hyp, opt.adam, opt.batch_size, 1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(hyp, opt.epochs))
    ema = ModelEMA(model)
    train.restore(ckpt, path, model, optimizer, scheduler, None, ema)
    groups = [{k: v for k, v in g.items() if k != 'params'} for g in optimizer.param_groups]
    moments = [t.clone() for s in optimizer.state.values() for t in s.values()]
    return (opt.to_dict(), ckpt['epoch'], ckpt['best_fitness'], ema.updates, groups,
            scheduler.state_dict()['last_epoch'], model.state_dict(), ema.ema.state_dict(),
            moments)


def same(a, b):
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(map(same, a, b))
    nan = (lambda v: isinstance(v, float) and math.isnan(v))  # noqa: E731
    return a == b or (nan(a) and nan(b))


def test_single_field_damage_to_a_last_pt_is_refused_or_changes_nothing(unfinished):
    """500 seeded mutations, one field each: every one is refused in one line before the first
    batch, or --resume restores exactly what it restores from the sound file."""
    import random
    sound = load_checkpoint(unfinished)
    want = resumed_state(sound, unfinished)
    fields = tensor_paths(sound)
    rng, refused = random.Random(0), 0
    for _ in range(MUTATIONS):
        path, value = rng.choice(fields)
        if rng.random() < 0.3 and isinstance(path[-1], str):
            what = f'{path} removed'
            ckpt = changed(sound, path, remove=True)
        else:
            new = damage(value, rng)
            what = f'{path} = {new!r}'[:120]
            ckpt = changed(sound, path, new)
        try:
            got = resumed_state(ckpt, unfinished)
        except ToolkitError as e:  # WeightsError naming the file, or the saved device's error
            assert '\n' not in str(e) and str(e), what
            refused += 1
            continue
        assert same(got, want), what
    assert refused > MUTATIONS * 0.7


def test_optimizer_groups_are_found_by_name_and_a_checkpoint_without_names_resumes(unfinished):
    """Groups carry names (bn, decay, bias); a last.pt from before they had them resumes as the
    same groups, and one whose groups are in another order is refused, naming the group."""
    ckpt = load_checkpoint(unfinished)
    assert [g['name'] for g in ckpt['optimizer']['param_groups']] == ['bn', 'decay', 'bias']
    unnamed = copy.deepcopy(ckpt)
    for g in unnamed['optimizer']['param_groups']:
        del g['name']
    assert same(resumed_state(unnamed, unfinished), resumed_state(ckpt, unfinished))
    swapped = copy.deepcopy(ckpt)
    groups = swapped['optimizer']['param_groups']
    groups[0]['name'], groups[2]['name'] = 'bias', 'bn'
    with pytest.raises(WeightsError, match="group 0: holds the 'bias' parameters"):
        resumed_state(swapped, unfinished)
