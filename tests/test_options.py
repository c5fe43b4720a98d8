"""Options: one typed object per training run, flags shared across tools with one meaning, the
prune methods' registry, hyp files checked, and every failure reported as one line."""
import importlib
import subprocess
import sys

import pytest
import torch

import train
from models import Darknet
from models.weights import WeightsError, load_pretrained, save_darknet_weights
from prune.cost import percent_for_bflops
from prune.methods import METHODS, OPTIONS
from prune.surgery import PruneError
from tests.conftest import ROOT, cfg_path, randomize_bn
from utils.errors import OptionError, ToolkitError
from utils.hyp import HypError, load_hyp


def test_a_misspelt_option_names_the_closest_valid_one():
    with pytest.raises(OptionError, match="unknown option 'sr_trget'.*sr_target"):
        train.run(sr_trget=0.3)
    r = subprocess.run([sys.executable, 'train.py', '--sr-trget', '0.3'], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.count('\n') == 1 and '--sr-trget' in r.stderr and '--sr-target' in r.stderr


def test_every_default_lives_in_the_options_object():
    """The parser's defaults are the dataclass's: one place for each."""
    args = train.parse_opt([])
    for name in train.TrainOptions.option_names():
        if name in ('extra', 'hyp_values'):
            continue
        assert getattr(args, name) == getattr(train.TrainOptions(), name), name


@pytest.mark.parametrize('command', ['test', 'detect', 'export', 'compress', 'prune'])
def test_every_command_takes_its_defaults_and_ranges_from_its_options_object(command):
    """test, detect, export, compress and every prune method: the parser is built from the
    dataclass (same defaults), and run(**kw) refuses what the flag refuses."""
    if command == 'prune':
        from prune.runner import PruneOptions, parser
        options, args = PruneOptions, parser('slim', METHODS['slim'].doc).parse_args([])
        bad = {'latency_runs': -1}
    else:
        module = importlib.import_module(command)
        options = next(v for k, v in vars(module).items() if k.endswith('Options')
                       and k != 'Options' and v.__module__.startswith(command))
        args = module.parse_opt([])
        bad = {'compress': {'round': 0}, 'export': {'opset': 5}}.get(command, {'max_det': 0})
    for name in options.option_names():
        if hasattr(args, name):
            assert getattr(args, name) == getattr(options(), name), (command, name)
    flag = '--' + next(iter(bad)).replace('_', '-')
    with pytest.raises(OptionError, match=flag):
        options.from_kwargs(**bad).validate()


@pytest.mark.parametrize('flags, match', [
    (['--epochs', '0'], '--epochs'), (['--epochs', '-3'], '--epochs'),
    (['--img-size', '33'], '--img-size'), (['-sr', '--s', '-1'], '--s'),
    (['--sr-target', '0.3'], '-sr'), (['--FPGA'], '--quantized'),
    (['--t_cfg', 'cfg/yolov3-mini.cfg'], '--t_weights'),
    (['-pt', '--weights', 'weights/yolov3-mini.pt'], '-pt')])
def test_bad_training_options_fail_before_any_work(flags, match):
    with pytest.raises(OptionError, match=match):
        train.run(**vars(train.parse_opt(flags)))


def test_ranges_hold_from_python_as_from_the_command_line(capsys):
    with pytest.raises(OptionError, match='--batch-size'):
        train.run(batch_size=0)  # the options object checks what a caller passes
    with pytest.raises(SystemExit) as e:  # argparse checks the flag itself, exit 2 as usage
        train.parse_opt(['--batch-size', '0'])
    assert e.value.code == 2 and '--batch-size: must be 1 or more' in capsys.readouterr().err


def test_shared_flags_mean_the_same_everywhere():
    """--img-size takes numbers and --device '' means auto in every tool."""
    import detect
    import export
    import test as evaluation
    from prune import runner
    parsers = {'train': train.parse_opt, 'test': evaluation.parse_opt, 'detect': detect.parse_opt,
               'export': export.parse_opt,
               'slim': lambda a: runner.parser('slim', 'x').parse_args(a)}
    for name, parse in parsers.items():
        args = parse(['--img-size', '320'])
        assert args.img_size == [320], name
        assert args.device == '', name


def test_the_registry_feeds_every_prune_script():
    for name, method in METHODS.items():
        p = importlib.import_module('prune.runner').parser(name, method.doc)
        dests = {a.dest for a in p._actions}
        assert set(method.options) <= dests, name
        assert set(OPTIONS) - set(method.options) - {'shortcuts'} <= set(OPTIONS) - dests
    channel = [m for m in METHODS.values() if 'percent' in m.options]
    assert all('round' in m.options for m in channel)  # --round reaches every channel method
    assert METHODS['regular'].default('round') == 8 and METHODS['slim'].default('round') == 1


def test_regular_selects_with_its_own_default_round(built):
    plan = METHODS['regular'].plan(built('yolov3-mini'), 0.5)
    assert all(int(m.sum()) % 8 == 0 or m.all() for m in plan.masks.values())


def test_an_unreachable_bflops_target_says_what_can_be_reached(built):
    model = built('yolov3-mini')
    with pytest.raises(PruneError, match=r'out of reach.*keeps \d'):
        percent_for_bflops(model, 0.001, 320, METHODS['slim'].plan)


def test_hyp_files_are_checked(tmp_path):
    text = (ROOT / 'data' / 'hyp.scratch.yaml').read_text()
    missing = tmp_path / 'missing.yaml'
    missing.write_text(text.replace('box: 0.05', ''))
    with pytest.raises(HypError, match=f'{missing}: missing box'):
        load_hyp(missing)
    typo = tmp_path / 'typo.yaml'
    typo.write_text(text + 'lr_0: 0.1\n')
    with pytest.raises(HypError, match="unknown key 'lr_0'.*lr0"):
        load_hyp(typo)
    with pytest.raises(HypError, match='optimizer'):
        load_hyp({'optimizer': 'rmsprop'})
    for f in sorted((ROOT / 'data').glob('hyp.*.yaml')):
        load_hyp(f)  # every shipped file passes


def test_minus_pt_loads_weights_trained_for_other_classes(tmp_path):
    text = cfg_path('yolov3-mini').read_text()
    torch.manual_seed(0)
    coco = randomize_bn(Darknet(text.replace('classes=6', 'classes=80')
                                .replace('filters=33', 'filters=255')))
    save_darknet_weights(coco, tmp_path / 'coco.weights')
    model = Darknet(cfg_path('yolov3-mini'))
    with pytest.raises(WeightsError, match='80 classes: add -pt'):
        load_pretrained(model, tmp_path / 'coco.weights')
    fresh = {j - 1: model.module_list[j - 1].conv.weight.clone() for j in model.yolo_layers}
    msg = load_pretrained(model, tmp_path / 'coco.weights', other_classes=True)
    assert 'for 80 classes' in msg and all(str(i) in msg for i in fresh)
    for i, m in enumerate(model.module_list):
        if i in fresh:
            assert torch.equal(m.conv.weight, fresh[i])  # started fresh
        elif hasattr(m, 'conv'):
            assert torch.equal(m.conv.weight, coco.module_list[i].conv.weight), i
            if hasattr(m.bn, 'running_var'):
                assert torch.equal(m.bn.running_var, coco.module_list[i].bn.running_var)


def test_every_domain_error_is_a_toolkit_error():
    import export
    from models.cfg import CfgError
    from quantize.export_int import IntExportError
    from quantize.qdq import QDQError
    from utils.datasets import DataError
    from utils.torch_utils import DeviceError
    for e in (CfgError, WeightsError, DataError, DeviceError, PruneError, export.ExportError,
              train.TrainingError, QDQError, IntExportError, OptionError, HypError):
        assert issubclass(e, ToolkitError), e


def test_an_unexpected_error_is_one_line_and_a_traceback_file(tmp_path):
    code = ('from utils.cli import friendly_errors\n'
            '@friendly_errors\n'
            'def main(argv=None):\n'
            '    {}["missing"]\n'
            'main([])\n')
    r = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 1 and 'Traceback' not in r.stderr
    line = r.stderr.strip()
    assert '\n' not in line and line.startswith('internal error: KeyError')
    path = line.rsplit('traceback in ', 1)[1].split(';')[0]
    assert 'Traceback' in open(path).read()
    r = subprocess.run([sys.executable, '-c', code.replace('main([])', 'main(["--debug"])')],
                       cwd=ROOT, capture_output=True, text=True)
    assert 'Traceback' in r.stderr  # --debug shows it
