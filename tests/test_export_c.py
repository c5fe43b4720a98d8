"""export.py --format c: the generated C99 project, compiled with the system compiler, computes
the Python integer runtime's head integers bit for bit, in q8, s8 and q16."""
import copy
import sys
import re
import shutil
import subprocess

import numpy as np
import pytest
import torch

from models import Darknet
from models.weights import save_checkpoint
from quantize import int_runtime
from quantize.config import QuantConfig
from quantize.export_c import export_c
from quantize.export_int import integer_model
from quantize.formats import WIDTH
from quantize.qat import quantize_model
from tests.conftest import ROOT, _built, randomize_bn
from tests.test_quantize import calibrate, x_batch

CONFIG = {'q8': QuantConfig(mode=3, bn_fold=True, fpga=True),
          's8': QuantConfig(mode=3),
          'q16': QuantConfig(mode=3, bn_fold=True, fpga=True, w_bits=16, a_bits=16)}
SIZE = (64, 96)


def compiler():
    cc = shutil.which('cc') or shutil.which('gcc')
    assert cc, 'the C export test needs a C compiler: apt install gcc (.ci/run does)'
    return cc


def built(out_dir, manifest, arrays, flags=('-O2',)):
    export_c(manifest, arrays, SIZE, out_dir)
    exe = out_dir / 'yolo'
    subprocess.run([compiler(), *flags, '-std=c99', '-Wall', '-Werror', '-o', str(exe),
                    *sorted(str(p) for p in out_dir.glob('*.c'))], check=True)
    return exe


def images():
    """A random image and a smooth one (large uniform areas saturate differently)."""
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (3, *SIZE), dtype=np.uint8)
    smooth = np.round(x_batch(1, *SIZE)[0].numpy() * 64 + 100).astype(np.uint8)
    return [noise, smooth]


def c_heads(exe, pixels, fmt, tmp_path):
    raw, out = tmp_path / 'image.raw', tmp_path / 'heads.bin'
    raw.write_bytes(np.ascontiguousarray(pixels).tobytes())
    subprocess.run([str(exe), str(raw), str(out)], check=True)
    return np.fromfile(out, np.dtype(WIDTH[fmt]).newbyteorder('<'))


LAYERS_CFG = """[net]
width=96
height=64
channels=3

[convolutional]
batch_normalize=1
filters=16
size=3
stride=2
pad=1
activation=relu

[convolutional]
batch_normalize=1
filters=16
groups=16
size=3
stride=1
pad=1
activation=leaky

[convolutional]
batch_normalize=1
filters=24
size=3
stride=1
dilation=2
pad=1
activation=relu

[maxpool]
size=2
stride=2

[dropout]
probability=0.2

[convolutional]
filters=21
size=1
stride=1
pad=1
activation=linear

[yolo]
mask=0,1,2
anchors=10,14, 23,27, 37,58
classes=2
num=3
"""


def check_bit_exact(float_model, fmt, tmp_path):
    model = quantize_model(copy.deepcopy(float_model), CONFIG[fmt])
    calibrate(model, x_batch(2, *SIZE))
    manifest, arrays = integer_model(model)
    assert manifest['number_format'] == fmt
    exe = built(tmp_path / 'c', manifest, arrays)
    for pixels in images():
        outs = int_runtime.run(manifest, arrays, pixels[None])
        want = np.concatenate([outs[j].ravel() for j in manifest['outputs']])
        got = c_heads(exe, pixels, fmt, tmp_path)
        assert got.shape == want.shape
        assert (got == want).all(), (np.abs(got - want).max(), (got != want).mean())
        assert len(np.unique(want)) > 20  # not a saturated or constant output
    return tmp_path / 'c'


@pytest.mark.parametrize('fmt', list(CONFIG))
@pytest.mark.parametrize('name', ['yolov3-mini', 'yolov3-mini-multitask'])
def test_c_equals_python_runtime_bit_for_bit(name, fmt, tmp_path):
    check_bit_exact(_built(name), fmt, tmp_path)


@pytest.mark.parametrize('fmt', list(CONFIG))
def test_c_depthwise_dilated_strided_relu_bit_for_bit(fmt, tmp_path):
    torch.manual_seed(0)
    check_bit_exact(randomize_bn(Darknet(LAYERS_CFG)).eval(), fmt, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize('fmt', ['s8', 'q16'])
def test_c_runs_clean_under_the_sanitizers(fmt, tmp_path):
    """The tiled kernels read only what they prepared and overflow nothing: the depthwise,
    dilated, strided network built with -fsanitize=address,undefined runs without a report
    and gives the same integers."""
    probe = subprocess.run([compiler(), '-fsanitize=address,undefined', '-x', 'c', '-o',
                            str(tmp_path / 'probe'), '-'], input='int main(void){return 0;}',
                           capture_output=True, text=True)
    if probe.returncode:
        pytest.skip(f'this compiler cannot build with the sanitizers: {probe.stderr[:80]}')
    torch.manual_seed(0)
    model = quantize_model(randomize_bn(Darknet(LAYERS_CFG)).eval(), CONFIG[fmt])
    calibrate(model, x_batch(2, *SIZE))
    manifest, arrays = integer_model(model)
    exe = built(tmp_path / 'c', manifest, arrays,
                ('-O1', '-g', '-fsanitize=address,undefined', '-fno-sanitize-recover=all'))
    for pixels in images():
        outs = int_runtime.run(manifest, arrays, pixels[None])
        want = np.concatenate([outs[j].ravel() for j in manifest['outputs']])
        assert (c_heads(exe, pixels, fmt, tmp_path) == want).all()


def test_c_maxpool_and_grouped_routes_bit_for_bit(tmp_path):
    check_bit_exact(_built('yolov4-tiny'), 'q8', tmp_path)  # maxpool, route groups=2 group_id=1


def test_project_is_static_integer_c_with_its_sizes_stated(tmp_path):
    model = quantize_model(copy.deepcopy(_built('yolov3-mini')), CONFIG['q8'])
    calibrate(model, x_batch(2, *SIZE))
    manifest, arrays = integer_model(model)
    out = tmp_path / 'c'
    export_c(manifest, arrays, SIZE, out)
    code = '\n'.join(p.read_text() for p in out.glob('*.[ch]') if p.name != 'main.c')
    code = re.sub(r'/\*.*?\*/', '', code, flags=re.S)  # comments may say "no malloc"
    assert not re.search(r'\b(malloc|calloc|float|double)\b', code)
    readme = (out / 'README.md').read_text()
    arena = int(re.search(r'arena .*: ([\d,]+) bytes', readme).group(1).replace(',', ''))
    assert f'#define YINT_ARENA_BYTES {arena}' in (out / 'model.h').read_text()
    sizes = {k: int(np.prod(v)) for k, v in
             int_runtime_shapes(manifest, arrays).items()}
    assert arena < sum(sizes.values())  # buffers that are never alive together share bytes
    weights = int(re.search(r'weights.*: ([\d,]+) bytes', readme).group(1).replace(',', ''))
    assert weights >= sum(a.size for k, a in arrays.items() if re.fullmatch(r'w\d+', k))
    assert 'cc -O2 -std=c99 -Wall -Werror' in readme


def test_a_new_project_replaces_the_old_and_touches_nothing_beside_it(tmp_path):
    model = quantize_model(copy.deepcopy(_built('yolov3-mini')), CONFIG['q8'])
    calibrate(model, x_batch(2, *SIZE))
    manifest, arrays = integer_model(model)
    out = tmp_path / 'c'
    for name in ('c.old', 'c.partial'):  # the user's own folders, with names a writer might use
        (tmp_path / name).mkdir()
        (tmp_path / name / 'keep.txt').write_text('mine')
    export_c(manifest, arrays, SIZE, out)
    (out / 'stale.c').write_text('from the first project')
    export_c(manifest, arrays, SIZE, out)
    assert not (out / 'stale.c').exists() and (out / 'model.c').is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ['c', 'c.old', 'c.partial']
    assert all((tmp_path / n / 'keep.txt').read_text() == 'mine' for n in ('c.old', 'c.partial'))


def int_runtime_shapes(manifest, arrays):
    outs = int_runtime.run(manifest, arrays, np.zeros((1, 3, *SIZE), np.uint8), keep_all=True)
    return {k: v.shape[1:] for k, v in outs.items()}


def test_export_py_format_c_from_a_checkpoint(tmp_path):
    model = quantize_model(copy.deepcopy(_built('yolov3-mini')), CONFIG['s8'])
    calibrate(model, x_batch(2, *SIZE))
    ckpt = tmp_path / 'q.pt'
    save_checkpoint({'cfg': model.cfg_text, 'model': model.state_dict(),
                     'quant': model.quant_config}, ckpt)

    subprocess.run([sys.executable, str(ROOT / 'export.py'), '--weights', str(ckpt), '--format',
                    'c', '--img-size', '64', '96', '--project', str(tmp_path), '--name', 'e'],
                   check=True, cwd=tmp_path)
    assert (tmp_path / 'e' / 'q_c' / 'model.c').is_file()
    r = subprocess.run([sys.executable, str(ROOT / 'export.py'), '--weights', str(ckpt),
                        '--format', 'c', '--int-format', 'q8', '--project', str(tmp_path)],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 1 and 'q8 needs power-of-two' in r.stderr
    assert not (tmp_path / 'exp' / 'q_c').exists()
    float_ckpt = tmp_path / 'f.pt'
    save_checkpoint({'cfg': model.cfg_text, 'model': _built('yolov3-mini').state_dict()},
                    float_ckpt)
    r = subprocess.run([sys.executable, str(ROOT / 'export.py'), '--weights', str(float_ckpt),
                        '--format', 'c', '--project', str(tmp_path)],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 1 and 'integer model' in r.stderr


def test_the_conv_kernels_vectorise_at_o2(tmp_path):
    """The multiply-accumulate loops of yint.c are what a C99 compiler vectorises at -O2 (gcc
    says so with -fopt-info-vec); a change that stops it is a 3x slower C runtime."""
    version = subprocess.run([compiler(), '--version'], capture_output=True, text=True).stdout
    if 'gcc' not in version.lower() and 'free software foundation' not in version.lower():
        pytest.skip(f'the vectorisation report is gcc\'s; this compiler is {version[:40]!r}')
    source = ROOT / 'quantize' / 'c' / 'yint.c'
    (tmp_path / 'yint_config.h').write_text('#include <stdint.h>\ntypedef int8_t act_t;\n'
                                            'typedef int8_t wt_t;\ntypedef int16_t tap_t;\n'
                                            'typedef int32_t acc_t;\n')
    r = subprocess.run([compiler(), '-O2', '-std=c99', '-fopt-info-vec-optimized', '-I',
                        str(tmp_path), '-I', str(source.parent), '-c', str(source), '-o',
                        str(tmp_path / 'yint.o')], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    lines = source.read_text().splitlines()
    kernels = {name: next(i for i, line in enumerate(lines, 1) if f' {name}(' in line)
               for name in ('mac_rows', 'mac_rows3', 'mac_row3', 'mac_row')}
    vectorised = {int(m) for m in re.findall(r'yint\.c:(\d+):\d+: optimized: loop vectorized',
                                             r.stderr)}
    for name, start in kernels.items():
        end = next(i for i, line in enumerate(lines, 1) if i > start and line == '}')
        assert any(start < line < end for line in vectorised), (name, r.stderr[-800:])
