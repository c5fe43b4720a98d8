"""Prune criteria that need no sparse training: the BN-folded filter norm (--method l1) and the
per-layer search on unlabelled photos (--method search)."""
import json
import subprocess
import sys

import pytest
import torch

from models import Darknet
from models.weights import load_model
from prune.masks import folded_l1
from prune.cost import percent_for_bflops
from prune.methods import METHODS
from prune.plan import PruneError
from prune.search import bflops_of, levels, loss_of, mismatch, outputs, search_plan
from prune.surgery import prune_model
from tests.conftest import ROOT, randomize_bn
from utils.datasets import create_dataloader, parse_data_cfg


@pytest.fixture(scope='module')
def trained():
    return load_model(str(ROOT / 'weights' / 'yolov3-mini.pt')).float().eval()


@pytest.fixture(scope='module')
def photos(tiny_data):
    source = parse_data_cfg(tiny_data)['train']
    loader, _ = create_dataloader(source, 6, 128, 4, workers=0)
    return [next(iter(loader))[0].float() / 255]


def test_folded_l1_ignores_a_scale_the_bn_undoes():
    """A conv's weights times c with the BN's running variance times c^2 compute the same:
    the folded norm is unchanged where the raw filter norm would grow c times."""
    model = randomize_bn(Darknet(ROOT / 'cfg' / 'yolov3-mini.cfg')).eval()
    before = folded_l1(model, 0).clone()
    m = model.module_list[0]
    with torch.no_grad():
        m.conv.weight.mul_(3.0)
        m.bn.running_var.mul_(9.0)
        m.bn.running_mean.mul_(3.0)
    assert torch.allclose(folded_l1(model, 0), before, rtol=1e-3)


def test_l1_method_cuts_without_sparse_training(trained):
    plan = METHODS['l1'].plan(trained, 0.3)
    pruned = prune_model(trained, plan)
    assert pruned.info(128)['bflops'] < trained.info(128)['bflops']
    for mask in plan.masks.values():  # the quarter floor and --round 1
        assert mask.sum() >= 0.25 * len(mask)


def test_mismatch_is_zero_for_the_same_outputs_and_counts_new_objects(trained, photos):
    ref = outputs(trained, photos)[0]
    assert mismatch(trained, ref, ref) == 0
    louder = [h.clone() for h in ref]
    louder[0][..., 4] += 5  # every anchor of the first head now sees an object
    assert mismatch(trained, louder, ref) > 0


def test_search_keeps_its_share_and_beats_the_norm_at_the_same_share(trained, photos):
    keep = 0.6
    plan = search_plan(trained, keep, photos, 128, round_to=8)
    share = prune_model(trained, plan).info(128)['bflops'] / trained.info(128)['bflops']
    assert share <= keep
    for mask in plan.masks.values():
        assert mask.all() or mask.sum() % 8 == 0
    ref = outputs(trained, photos)
    l1_pct = percent_for_bflops(trained, share, 128,
                                lambda m, p: METHODS['l1'].plan(m, p, round=8))
    l1 = METHODS['l1'].plan(trained, l1_pct, round=8)
    assert loss_of(trained, plan, photos, ref) < loss_of(trained, l1, photos, ref)


def test_levels_step_by_an_eighth_down_to_the_floor():
    assert levels(64, 0.25, 8) == [56, 48, 40, 32, 24, 16]
    assert levels(16, 0.25, 8) == [8]
    assert levels(8, 0.25, 8) == []


def test_search_out_of_reach_says_how_far_it_got(trained, photos):
    with pytest.raises(PruneError, match='out of reach.*at its floor'):
        search_plan(trained, 0.01, photos, 128)


def test_search_command_writes_a_pruned_set(tiny_data, tmp_path):
    source = parse_data_cfg(tiny_data)['train']
    args = [sys.executable, '-m', 'prune', '--method', 'search', '--weights',
            str(ROOT / 'weights' / 'yolov3-mini.pt'), '--data', str(tiny_data), '--images', source,
            '--calib', '4', '--keep-bflops', '0.7', '--img-size', '128', '--latency-runs', '0',
            '--project', str(tmp_path), '--name', 's']
    run = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads((tmp_path / 's' / 'prune.json').read_text())
    assert report['pt'].endswith('_search_keep0.7.pt')
    assert report['pruned']['bflops'] <= 0.7 * report['original']['bflops']
    bare = subprocess.run(args[:args.index('--images')] + args[args.index('--calib'):], cwd=ROOT,
                          capture_output=True, text=True)
    assert bare.returncode != 0
    assert bare.stderr.strip().splitlines()[-1].endswith('give --images SOURCE...')


def test_the_estimated_bflops_are_the_built_cuts(trained):
    plan = METHODS['l1'].plan(trained, 0.4)
    real = prune_model(trained, plan).info(128)['bflops']
    assert bflops_of(trained, 128)(plan) == pytest.approx(real, rel=0.02)
