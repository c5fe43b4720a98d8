"""bench/speed/latency.py: backends take turns in blocks, and every row is timed and written."""
import copy
import json

import pytest
import torch

from quantize import graphs
from bench.speed import latency
from models.weights import save_checkpoint
from quantize.config import QuantConfig
from quantize.qat import quantize_model
from tests.conftest import _built
from tests.test_quantize import calibrate, x_batch
from utils import timing


def test_runners_take_turns_block_by_block():
    calls = []

    def runner(name):
        def make():
            calls.append(('make', name))
            return lambda: calls.append(('run', name))
        return {'backend': name}, make

    result = timing.interleaved([runner('a'), runner('b')], runs=6, warmup=1, blocks=3)
    assert len(result) == 2 and all(med > 0 and p90 >= med for med, p90 in result)
    makes = [name for kind, name in calls if kind == 'make']
    assert makes == ['a', 'b'] * 3  # turns, not one backend after the other
    assert sum(1 for kind, name in calls if kind == 'run' and name == 'a') == 3 * (2 + 1)


def test_bench_writes_a_row_per_checkpoint_backend_and_batch(tmp_path):
    out = tmp_path / 'latency.json'
    latency.main(['--img-size', '64', '--batch', '1', '2', '--runs', '2', '--warmup', '1',
                  '--out', str(out)])
    rows = json.loads(out.read_text())['results']
    assert {(r['backend'], r['batch']) for r in rows} == {
        (b, n) for b in ('torch eager fp32', 'torch channels_last', 'onnxruntime fp32')
        for n in (1, 2)}
    assert all(r['median_ms'] > 0 and r['img_s'] > 0 for r in rows)


def test_ncnn_rows_run_at_batch_1(tmp_path):
    pytest.importorskip('ncnn', reason='ncnn is not installed (pip install ncnn pnnx)')
    pytest.importorskip('pnnx', reason='pnnx is not installed (pip install ncnn pnnx)')
    out = tmp_path / 'latency.json'
    latency.main(['--img-size', '64', '--batch', '1', '2', '--runs', '2', '--warmup', '1',
                  '--ncnn', '--out', str(out)])
    rows = json.loads(out.read_text())['results']
    ncnn = [r for r in rows if r['backend'] == 'ncnn fp32']
    assert [r['batch'] for r in ncnn] == [1] and ncnn[0]['median_ms'] > 0


def test_threads_flag_reaches_the_onnxruntime_sessions(tmp_path, monkeypatch):
    import onnxruntime as ort
    seen = []
    real = ort.InferenceSession

    def spy(path, options=None, **kw):
        seen.append(options.intra_op_num_threads)
        return real(path, options, **kw)
    monkeypatch.setattr(ort, 'InferenceSession', spy)
    threads = torch.get_num_threads()
    out = tmp_path / 'latency.json'
    try:
        latency.main(['--img-size', '64', '--batch', '1', '--runs', '1', '--warmup', '0',
                      '--threads', '1', '--out', str(out)])
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    assert seen and set(seen) == {1}
    assert json.loads(out.read_text())['threads'] == 1


def test_rows_name_checkpoints_by_as_much_of_their_path_as_tells_them_apart():
    names = latency.labels(['runs/a/finetune/weights/last.pt', 'runs/b/finetune/weights/last.pt',
                            'weights/yolov3-mini.pt'])
    assert list(names.values()) == ['a/finetune/weights/last.pt', 'b/finetune/weights/last.pt',
                                    'weights/yolov3-mini.pt']
    assert latency.labels(['x/best.pt', 'y/last.pt']) == {'x/best.pt': 'best.pt',
                                                          'y/last.pt': 'last.pt'}


def test_channels_last_row_converts_a_copy_not_the_eager_model():
    from models import Darknet
    from tests.conftest import cfg_path
    model = Darknet(cfg_path('yolov3-mini'))
    rows = {name: m for name, m, _ in timing.torch_backends(model, compile_too=False)}
    eager = rows['torch eager fp32'].module_list[0].conv.weight
    last = rows['torch channels_last'].module_list[0].conv.weight
    assert eager.is_contiguous() and not eager.is_contiguous(memory_format=torch.channels_last)
    assert last.is_contiguous(memory_format=torch.channels_last)


def test_onnx_rows_export_a_copy_and_leave_the_timed_model_alone(tmp_path):
    from models import Darknet
    from tests.conftest import cfg_path
    model = Darknet(cfg_path('yolov3-mini')).half()  # .float().cpu() in place would change it
    rows = list(graphs.onnx_runners(model, 64, [1], torch.device('cpu'), tmp_path))
    assert len(rows) == 1 and next(model.parameters()).dtype == torch.float16


def test_openvino_rows_for_float_and_int8(tmp_path):
    pytest.importorskip('openvino')
    out = tmp_path / 'latency.json'
    qat = quantize_model(copy.deepcopy(_built('yolov3-mini')), QuantConfig(mode=3))
    qat = calibrate(qat, x_batch())
    save_checkpoint({'cfg': qat.cfg_text, 'model': qat.state_dict(), 'quant': qat.quant_config},
                    tmp_path / 'qat.pt')
    latency.main(['--weights', str(tmp_path / 'qat.pt'), '--img-size', '64', '--batch', '1',
                  '--runs', '2', '--warmup', '1', '--openvino', '--out', str(out)])
    rows = {r['backend'] for r in json.loads(out.read_text())['results']}
    assert {'openvino fp32', 'openvino int8', 'onnxruntime int8'} <= rows
