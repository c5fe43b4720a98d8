"""--resume of a damaged last.pt: its training state is checked before the first batch, and a
results.csv that cannot be read is set aside, never a reason to lose an epoch."""
import copy
import re

import pytest
import torch

import train
from models.weights import WeightsError, load_checkpoint, save_checkpoint
from tests.bad_input import run_main
from tests.conftest import _built


@pytest.fixture(scope='module')
def unfinished(tiny_data, tmp_path_factory):
    """A run stopped after epoch 1 of 2: its last.pt."""
    root = tmp_path_factory.mktemp('resume')
    train.run(data=str(tiny_data), epochs=1, batch_size=8, img_size=[128], workers=0,
              notest=True, project=str(root), name='run')
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
    'options that are not numbers': (text_options, r"saved option epochs='three'"),
    'an absurd epoch': (lambda c: c.update(epoch=10 ** 9), r'epoch 1000000000 is not one of'),
    'a negative epoch': (lambda c: c.update(epoch=-7), r'epoch -7 is not one of'),
    'an epoch that is text': (lambda c: c.update(epoch='1'), r"epoch '1' is not one of"),
    'no EMA': (lambda c: c.pop('ema'), r'no ema state'),
    'weights of another model': (other_model, r'its model state does not fit this run'),
    'a best fitness that is text': (lambda c: c.update(best_fitness='x'),
                                    r"best_fitness 'x' is not a number"),
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
