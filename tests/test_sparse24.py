"""2:4 structured sparsity: the masks keep the two largest of every four, training keeps them
exactly, and every export carries the pattern."""
import numpy as np
import pytest
import torch

import export
import train
from quantize import graphs
from models import Darknet
from models.sparse24 import holds_24, mask_24, runs_of_4, sparse_layers
from models.weights import load_checkpoint, save_checkpoint
from prune.sparse24 import Sparse24Hook, check, main
from quantize.calibrate import calibrate
from quantize.config import QuantConfig
from quantize.loader import load_model
from quantize.qat import quantize_model
from tests.conftest import ROOT, cfg_path, randomize_bn
from utils.errors import OptionError

MINI = ROOT / 'weights' / 'yolov3-mini.pt'
DENSE = [0, 25, 33, 41]  # 3 input channels, and the three head convs


def test_the_mask_keeps_the_two_largest_of_every_run_of_four_input_channels():
    w = torch.zeros(1, 8, 1, 2)
    w[0, :4, 0, 0] = torch.tensor([0.1, -3.0, 2.0, 0.5])   # keeps -3 and 2
    w[0, 4:, 0, 0] = torch.tensor([4.0, 0.0, 0.0, -0.2])   # keeps 4 and -0.2
    w[0, :, 0, 1] = torch.arange(8.0)                      # keeps 2, 3 and 6, 7
    m = mask_24(w)
    assert m[0, :, 0, 0].tolist() == [False, True, True, False, True, False, False, True]
    assert m[0, :, 0, 1].tolist() == [False, False, True, True, False, False, True, True]


def test_masked_weights_hold_the_pattern_and_dense_ones_do_not():
    w = torch.randn(16, 32, 3, 3)
    assert not holds_24(w)
    sparse = w * mask_24(w)
    assert holds_24(sparse) and (sparse == 0).float().mean() == 0.5
    assert (runs_of_4(sparse) != 0).sum(-1).eq(2).all()  # exactly 2 of 4, at every position
    assert not holds_24(torch.randn(4, 6, 1, 1))          # 6 input channels: no runs of 4


def _cfg(tmp_path, marks):
    """yolov3-mini with sparse=1 written on the given conv layers."""
    model = Darknet(cfg_path('yolov3-mini'))
    for i in marks:
        model.blocks[i + 1].options['sparse'] = '1'
    path = tmp_path / 'marked.cfg'
    path.write_text(model.cfg_text)
    return path


def test_marked_layers_only_and_every_eligible_conv_when_none_is_marked(tmp_path):
    model = Darknet(cfg_path('yolov3-mini'))
    chosen, dense = sparse_layers(model)
    convs = [i for i, m in enumerate(model.module_list) if hasattr(m, 'conv')]
    heads = [j - 1 for j in model.yolo_layers]  # left dense unless marked, as lightNet does
    assert dense == {0: '3 input channels'} and chosen == [c for c in convs[1:] if c not in heads]
    marked = Darknet(_cfg(tmp_path, [0, 2, 5]))
    assert sparse_layers(marked) == ([2, 5], {0: '3 input channels'})
    mobile = Darknet(cfg_path('yolov3tiny-mobilenetv3-small'))
    _, dense = sparse_layers(mobile)
    assert 'grouped/depthwise' in dense.values()


def test_sparse24_and_sparse_training_are_run_in_turn():
    with pytest.raises(OptionError, match='in turn'):
        train.run(cfg=str(cfg_path('yolov3-mini')), sr=True, sparse24=True, epochs=1)


@pytest.fixture(scope='module')
def asp_run(tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp('asp')
    train.run(cfg=str(cfg_path('yolov3-mini')), weights=str(MINI), data=str(tiny_data),
              img_size=[128], epochs=2, batch_size=8, workers=0, project=str(out),
              sparse24=True, hyp={'nbs': 8, 'warmup_epochs': 0})
    return out / 'exp' / 'weights'


def test_training_keeps_the_masks_in_the_weights_and_in_ema(asp_run):
    start = load_checkpoint(MINI)['model']
    for name in ('last.pt', 'best.pt'):
        rows = check(asp_run / name)
        assert [r['layer'] for r in rows if not r['holds']] == DENSE
        assert all(r['marked'] == r['holds'] for r in rows)         # the cfg says which
    last = load_checkpoint(asp_run / 'last.pt')
    for key in ('model', 'ema'):
        w = last[key]['module_list.2.conv.weight'].float()
        assert torch.equal(w != 0, mask_24(start['module_list.2.conv.weight']))


def test_resume_keeps_the_masks_it_started_with():
    hook = Sparse24Hook()
    model = randomize_bn(Darknet(cfg_path('yolov3-mini')))
    hook.on_model(model)
    again = Sparse24Hook()
    again.on_model(Darknet(cfg_path('yolov3-mini')))  # other weights, other masks ...
    again.load_state(hook.state())                     # ... until the checkpoint's come back
    assert all(torch.equal(a, b) for a, b in zip(hook.masks, again.masks))


def test_qat_with_sparse24_keeps_the_pattern(tiny_data, tmp_path):
    train.run(cfg=str(cfg_path('yolov3-mini')), weights=str(MINI), data=str(tiny_data),
              img_size=[128], epochs=1, batch_size=8, workers=0, project=str(tmp_path),
              sparse24=True, quantized=3, BN_Fold=True, hyp={'nbs': 8, 'warmup_epochs': 0})
    rows = check(tmp_path / 'exp' / 'weights' / 'last.pt')
    assert [r['layer'] for r in rows if not r['holds']] == DENSE


def test_every_export_carries_the_pattern(asp_run, tmp_path):
    weights = asp_run / 'last.pt'
    cfg, darknet = export.run(weights=str(weights), fmt='darknet', project=str(tmp_path),
                              name='dk')
    rows = check(darknet, cfg)
    assert [r['layer'] for r in rows if not r['holds']] == DENSE and rows[5]['marked']
    onnx_path = export.run(weights=str(weights), fmt='onnx', img_size=[128],
                           project=str(tmp_path), name='fp32')[0]
    assert [r['holds'] for r in check(onnx_path)] == [r['holds'] for r in rows]
    model = load_model(weights).float().eval()
    want = [m.conv.weight != 0 for m in model.module_list if hasattr(m, 'conv')]
    quant = quantize_model(model, QuantConfig(mode=3))
    with torch.no_grad():
        calibrate(quant, [torch.rand(2, 3, 128, 128)])
    for target in ('tensorrt', 'onnxruntime-u8'):
        path = graphs.export_onnx(quant, tmp_path / target, (128, 128), qdq=target)[0]
        got = check(path)
        assert [r['holds'] for r in got] == [r['holds'] for r in rows]
        from prune.sparse24 import onnx_conv_weights
        for w, nonzero in zip(onnx_conv_weights(path).values(), want):
            assert not np.any((w != 0) & ~nonzero.numpy())  # a zero weight stays zero


def test_check_names_marked_layers_that_are_not_2_4(tmp_path, capsys):
    model = Darknet(_cfg(tmp_path, [2, 5]))
    save_checkpoint({'cfg': model.cfg_text, 'model': model.state_dict()}, tmp_path / 'd.pt')
    with pytest.raises(SystemExit) as e:
        main(['--check', str(tmp_path / 'd.pt')])
    assert e.value.code != 0
    assert 'not 2:4: 2, 5' in capsys.readouterr().err


def test_compress_adds_a_2_4_stage_that_qat_and_export_keep(tiny_data, tmp_path):
    import compress
    from tests.test_compress import tiny_args
    args = tiny_args(tiny_data, tmp_path, 's24') + ['--sparse24', '--epochs-sparse24', '1',
                                                    '--skip', 'sparse', 'prune', 'latency']
    report = compress.run(**vars(compress.parse_opt(args)))
    rows = {r['stage']: r for r in report['stages']}
    assert list(rows)[:4] == ['baseline', 'finetune', 'sparse24', 'qat']
    for stage in ('sparse24', 'qat'):
        assert sum(r['holds'] for r in check(rows[stage]['weights'])) > 20
    onnx_rows = check(report['files']['onnx_tensorrt'][0])
    assert [r['holds'] for r in onnx_rows] == [r['holds'] for r in check(rows['qat']['weights'])]
