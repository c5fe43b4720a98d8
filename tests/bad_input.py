"""The bad-input suite's workspace and probe runner (tests/test_bad_*.py).

A probe runs a command's ``main`` in this process (a failure is found before any work, so a
probe costs milliseconds, not an interpreter start). A row: the command, its arguments (``{x}``
names a file of the workspace), the exit code, and a regex the one error line must match.
"""
import copy
import importlib
import re
import signal
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from models.weights import save_checkpoint, save_darknet_weights
from tests.conftest import ROOT, _built

COMMANDS = {'train': 'train', 'test': 'test', 'detect': 'detect', 'export': 'export',
            'compress': 'compress', 'ptq': 'quantize.ptq', 'export_int': 'quantize.export_int',
            'int_runtime': 'quantize.int_runtime', 'sensitivity': 'quantize.sensitivity',
            'kmeans': 'data.kmeans_anchors', 'sparse24': 'prune.sparse24'}
PRUNE = ('normal', 'regular', 'shortcut', 'slim', 'layer', 'layer_channel')

CFG_BODY = (ROOT / 'cfg' / 'yolov3-mini.cfg').read_text()


def workspace(d, tiny_data):
    """A workspace of broken files beside good ones in folder d; {name: path}."""
    files = {'data': tiny_data, 'out': d / 'runs'}

    def put(name, content, key=None):
        p = d / name
        p.write_bytes(content) if isinstance(content, bytes) else p.write_text(content)
        files[key or name.split('.')[0]] = p

    put('binary.cfg', bytes(np.random.default_rng(0).integers(0, 256, 3000, np.uint8)))
    put('empty.cfg', '')
    put('noyolo.cfg', '[net]\nwidth=64\nheight=64\nchannels=3\n\n[convolutional]\nfilters=8\n'
        'size=3\nstride=1\npad=1\nactivation=leaky\n')
    put('typo.cfg', CFG_BODY.replace('filters=16', 'filters=sixteen', 1))
    put('wide.cfg', CFG_BODY.replace('filters=16', 'filters=24', 1))
    put('badkey.cfg', CFG_BODY.replace('activation=leaky', 'activation=leakyy', 1))
    put('badroute.cfg', CFG_BODY.replace('layers=-4', 'layers=-99', 1))
    put('random.pt', bytes(np.random.default_rng(1).integers(0, 256, 2000, np.uint8)))
    put('zero.pt', b'')
    put('zip.pt', zlib.compress(b'not a checkpoint'))
    put('trunc.weights', b'\x00\x00\x00\x00\x02\x00')
    put('short18.weights', np.array([0, 2, 0], np.int32).tobytes() + b'\x00' * 6)
    put('onename.names', 'circle\n')
    put('random.onnx', bytes(np.random.default_rng(2).integers(0, 256, 300, np.uint8)),
        'randomonnx')
    put('ir.xml', '<?xml version="1.0"?><net name="x"></net>\n', 'irxml')
    put('text.weights', 'hello')
    model = _built('yolov3-mini')
    save_checkpoint({'cfg': model.cfg_text, 'model': model.state_dict()}, d / 'mini.pt')
    files['mini'] = d / 'mini.pt'
    save_checkpoint({'cfg': model.cfg_text, 'model': model.state_dict(), 'epoch': 0},
                    d / 'stripped.pt')  # no optimizer: cannot --resume
    files['stripped'] = d / 'stripped.pt'
    torch.save({'model': 5}, d / 'wrongtypes.pt')
    files['wrongtypes'] = d / 'wrongtypes.pt'
    torch.save({'model': model.state_dict()}, d / 'nocfg.pt')
    files['nocfg'] = d / 'nocfg.pt'
    (d / 'runs' / 'done' / 'weights').mkdir(parents=True)
    save_checkpoint({'cfg': model.cfg_text, 'model': model.state_dict()},
                    d / 'runs' / 'done' / 'weights' / 'best.pt')
    save_darknet_weights(model, d / 'mini.weights')
    files['miniweights'] = d / 'mini.weights'
    half = (d / 'mini.weights').read_bytes()
    put('cut.weights', half[:len(half) // 2])
    root = tiny_data.parent
    names = ROOT / 'data' / 'shapes.names'
    put('notrain.data', f'classes=6\nvalid={root}/shapes/val.txt\nnames={names}\n')
    put('novalid.data', f'classes=6\ntrain={root}/shapes/train.txt\nnames={names}\n')
    put('nonames.data', f'classes=6\ntrain={root}/shapes/train.txt\nvalid={root}/shapes/val.txt\n'
        f'names={d}/nothere.names\n')
    put('badclasses.data', f'classes=six\ntrain={root}/shapes/train.txt\n'
        f'valid={root}/shapes/val.txt\n')
    put('missinglist.data', f'classes=6\ntrain={d}/nothere.txt\nvalid={d}/nothere.txt\n'
        f'names={names}\n')
    put('emptylist.txt', '')
    put('segzero.data', f'classes=6\ntrain={root}/shapes/train.txt\nvalid={root}/shapes/val.txt\n'
        f'names={names}\nseg_classes=0\nseg_names={names}\n')
    put('negclasses.data', f'classes=-6\ntrain={root}/shapes/train.txt\n'
        f'valid={root}/shapes/val.txt\nnames={names}\n')
    put('emptylist.data', f'classes=6\ntrain={d}/emptylist.txt\nvalid={d}/emptylist.txt\n'
        f'names={names}\n')
    put('hypmissing.yaml', 'lr0: 0.01\n')
    put('hypbroken.yaml', 'lr0: [0.01\n')
    put('hyplist.yaml', '- 1\n- 2\n')
    put('hypnan.yaml', (ROOT / 'data' / 'hyp.scratch.yaml').read_text().replace(
        'lr0: ', 'lr0: .nan #', 1))
    put('notimage.jpg', 'not an image')
    (d / 'folder.pt').mkdir()
    files['folder'] = d / 'folder.pt'
    import cv2
    cv2.imwrite(str(d / 'thin.jpg'), np.zeros((1, 2000, 3), np.uint8))
    files['thin'] = d / 'thin.jpg'
    cv2.imwrite(str(d / 'ok.jpg'), np.full((96, 128, 3), 127, np.uint8))
    files['ok'] = d / 'ok.jpg'
    put('zero.jpg', b'', 'zerojpg')
    put('cut.jpg', (d / 'ok.jpg').read_bytes()[:200], 'cutjpg')
    (d / 'emptydir').mkdir()
    files['emptydir'] = d / 'emptydir'
    (d / 'dumped').mkdir()
    (d / 'dumped' / '000_conv.npy').write_bytes(b'an earlier dump')
    files['dumped'] = d / 'dumped'
    files['intjson'] = integer_export(model, d)
    files['qpt'] = d / 'q.pt'
    from models.weights import load_checkpoint
    q = load_checkpoint(d / 'q.pt')
    q['quant'] = {**q['quant'], 'bogus': 1}
    save_checkpoint(q, d / 'strayq.pt')
    files['strayq'] = d / 'strayq.pt'
    q['quant'] = {k: v for k, v in q['quant'].items() if k != 'bogus'} | {'w_bits': 'eight'}
    save_checkpoint(q, d / 'textbits.pt')
    files['textbits'] = d / 'textbits.pt'
    tiny = _built('yolov3-tiny')  # 80 classes: no teacher for a 6-class student
    save_checkpoint({'cfg': tiny.cfg_text, 'model': tiny.state_dict()}, d / 'tiny80.pt')
    files['tiny80'] = d / 'tiny80.pt'
    (d / 'ro' / 'exp').mkdir(parents=True)
    files['ro'] = d / 'ro'
    files |= tampered_integer_models(files['intjson'], d / 'tampered')
    put('bad_int.json', '{"format": "yolo-int/1"}')
    put('noarrays_int.json', '{"format": "yolo-int/2"}')
    put('nonpz_int.json', '{"format": "yolo-int/2", "cfg": "", "number_format": "q8", '
        '"input": {}, "layers": [], "outputs": []}')
    return files


def _edit_layer(kind, key, value):
    """An edit of the first layer of ``kind`` in a manifest."""
    def edit(m, a):
        e = next(e for e in m['layers'] if e['type'] == kind)
        if isinstance(key, tuple):
            e[key[0]][key[1]] = value
        else:
            e[key] = value
    return edit


def _edit_array(kind, how):
    def edit(m, a):
        name = next(e for e in m['layers'] if e['type'] == kind)['weight']
        if how == 'missing':
            del a[name]
        elif how == 'float':
            a[name] = a[name].astype(np.float32)
        else:
            a[name] = a[name][:-1]
    return edit


# name: (edit of (manifest, arrays), what the one line must say)
TAMPERED = {
    'fmt': (lambda m, a: m.update(number_format='q4'), r'number_format .q4.'),
    'stride': (_edit_layer('conv', 'stride', 0), r'layer 0: stride=0'),
    'kind': (_edit_layer('upsample', 'type', 'deconv'), r'unknown layer type .deconv.'),
    'zpstr': (_edit_layer('conv', ('out', 'zero_point'), '0'), r'zero_point must be a whole'),
    'route': (_edit_layer('route', 'from', [99]), r'from must name earlier layers'),
    'wshape': (_edit_array('conv', 'short'), r'weight: tensor w0 has shape'),
    'noweight': (_edit_array('conv', 'missing'), r"the tensor 'w0' is not in the npz"),
    'floatw': (_edit_array('conv', 'float'), r'w0 holds float32, not integers'),
    'nolayers': (lambda m, a: m.update(layers=[]), r'the cfg has \d+ layers, the manifest 0'),
    'outputs': (lambda m, a: m.update(outputs=[999]), r'outputs must be the layers the heads'),
    'qrange': (_edit_layer('conv', ('out', 'qmin'), 200), r'qmin 200 must be below qmax'),
    'act': (_edit_layer('conv', 'activation', 'mish'), r"activation 'mish' is not one the"),
    'shift': (_edit_layer('shortcut', 'shift', 500), r'shift=500 is out of range'),
    'cutnpz': (None, r'_int\.npz: cannot read the integer tensors'),
}


def tampered_integer_models(good, folder):
    """One broken copy of a good integer model per TAMPERED entry: {'int_<name>': its json}."""
    import json
    manifest = json.loads(Path(good).read_text())
    with np.load(Path(good).with_suffix('.npz')) as f:
        arrays = dict(f)
    out = {}
    for name, (edit, _) in TAMPERED.items():
        d = folder / name
        d.mkdir(parents=True)
        m, a = json.loads(json.dumps(manifest)), dict(arrays)
        if edit:
            edit(m, a)
        (d / 'm_int.json').write_text(json.dumps(m))
        np.savez(d / 'm_int.npz', **a)
        if name == 'cutnpz':
            (d / 'm_int.npz').write_bytes((d / 'm_int.npz').read_bytes()[:300])
        out[f'int_{name}'] = d / 'm_int.json'
    return out


def integer_export(model, folder):
    """A good integer model (QAT int8 of yolov3-mini) in folder/int; its json."""
    from quantize.config import QuantConfig
    from quantize.export_int import run
    from tests.test_export_int import quantized
    q = quantized('yolov3-mini', QuantConfig(mode=3))
    save_checkpoint({'cfg': model.cfg_text, 'model': q.state_dict(), 'quant': q.quant_config},
                    folder / 'q.pt')
    return Path(run(weights=str(folder / 'q.pt'), project=str(folder), name='int')[1])


def fill(args, ws):
    return [a.format(**{k: str(v) for k, v in ws.items()}) for a in args]


def files_in(folder):
    """Every file under ``folder`` (hidden temporaries too) with its size and time."""
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in Path(folder).rglob('*')
            if p.is_file()}


class DidRealWork(BaseException):
    """Raised in a probe that runs past its budget: the bad input got through to the work
    (a BaseException, so that no command's error handling can turn it into a pass)."""


def _too_long(signum, frame):
    raise DidRealWork('the probe ran past 20 s: the bad input was not refused up front')


def changed(tree, path, value=None, remove=False):
    """A copy of tree with one entry set (or removed): only the containers on the path are
    copied, the rest is shared (nothing below is changed in place)."""
    top = copy.copy(tree)
    node = top
    for k in path[:-1]:
        node[k] = copy.copy(node[k])
        node = node[k]
    if remove:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return top


def run_main(command, argv, budget=20):
    if command in PRUNE:
        from prune.cli import method_main
        main = method_main(command)
    else:
        main = importlib.import_module(COMMANDS[command]).main
    old = signal.signal(signal.SIGALRM, _too_long)
    signal.alarm(budget)
    try:
        with pytest.raises(SystemExit) as e:
            main(argv)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    return e.value.code


T = '--project {out}'.split()  # every command that writes, writes into the workspace


def method_args(m):
    return ['--shortcuts', '2'] if m == 'layer' else ['--percent', '0.5']


def probe_id(p):
    return f"{p[0]}:{' '.join(p[1])}".replace(' --project {out}', '')



def one_line(command, args, code, message, ws, capsys, monkeypatch):
    """Run a probe: one error line matching message, exit code, no traceback, no file changed."""
    monkeypatch.chdir(ROOT)
    before = files_in(ws['out'].parent)
    exit_code = run_main(command, fill(args, ws))
    err = capsys.readouterr().err.strip()
    assert files_in(ws['out'].parent) == before, 'a failed command left or changed a file'
    assert 'Traceback' not in err and 'internal error' not in err, err[-1500:]
    assert exit_code == code, (exit_code, err[-800:])
    errors = [ln for ln in err.splitlines() if 'error:' in ln]  # ours, or argparse's prog: error:
    assert len(errors) == 1 and re.search(message, errors[0]), err[-800:]
