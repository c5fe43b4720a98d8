"""Bad input, as a careless user types it: every probe must end in one line on stderr that names
the file or flag, a non-zero exit code, no traceback, and no partial file under a final name.

Probes run the commands' ``main`` in this process (a failure is found before any work, so a
probe costs milliseconds, not an interpreter start). A row: the command, its arguments (``{x}``
names a file of the workspace below), the exit code, and a regex the message must match.
"""
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


@pytest.fixture(scope='module')
def ws(tmp_path_factory, tiny_data):
    """A workspace of broken files beside good ones; {name: path}."""
    d = tmp_path_factory.mktemp('bad')
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
    files['intjson'] = integer_export(model, d)
    files['qpt'] = d / 'q.pt'
    tiny = _built('yolov3-tiny')  # 80 classes: no teacher for a 6-class student
    save_checkpoint({'cfg': tiny.cfg_text, 'model': tiny.state_dict()}, d / 'tiny80.pt')
    files['tiny80'] = d / 'tiny80.pt'
    (d / 'ro' / 'exp').mkdir(parents=True)
    files['ro'] = d / 'ro'
    put('bad_int.json', '{"format": "yolo-int/1"}')
    put('noarrays_int.json', '{"format": "yolo-int/2"}')
    put('nonpz_int.json', '{"format": "yolo-int/2", "cfg": "", "number_format": "q8", '
        '"input": {}, "layers": [], "outputs": []}')
    return files


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


def run_main(command, argv, budget=20):
    module = f'{command}_prune' if command in PRUNE else COMMANDS[command]
    main = importlib.import_module(module).main
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


# A command's arguments that are valid apart from the one under test (the probe adds that one).
PRUNE_BASE = {m: ['--data', '{data}', '--no-eval', '--latency-runs', '0', *method_args(m), *T]
              for m in PRUNE}
CFG_USERS = {'train': ['--data', '{data}', *T], 'test': ['--data', '{data}', *T],
             'detect': ['--source', '{ok}', *T], 'export': [*T],
             'ptq': ['--data', '{data}', *T], 'sensitivity': ['--data', '{data}', *T],
             'compress': ['--data', '{data}', *T],
             'kmeans': ['--data', '{data}', '--out', '{out}/k.cfg', '--generations', '5'],
             'sparse24': ['--check', '{miniweights}'],
             **{m: ['--weights', '{miniweights}', *a] for m, a in PRUNE_BASE.items()}}
WEIGHTS_USERS = {'train': ['--data', '{data}', *T], 'test': ['--data', '{data}', *T],
                 'detect': ['--source', '{ok}', *T], 'export': [*T],
                 'ptq': ['--data', '{data}', *T], 'sensitivity': ['--data', '{data}', *T],
                 'compress': ['--data', '{data}', *T], **PRUNE_BASE}
# the bad file (a workspace name or path) and what the one error line must match
BAD_CFGS = {'{binary}': r'binary\.cfg: not a text file', '{empty}': r'empty\.cfg',
            '{noyolo}': r'noyolo\.cfg', '{typo}': r'typo\.cfg:\d+.*filters',
            '{badkey}': r'badkey\.cfg:\d+.*leakyy', '{badroute}': r'badroute\.cfg:\d+',
            '{out}/nothere.cfg': r'nothere\.cfg'}
BAD_PTS = {'{random}': r'random\.pt', '{zero}': r'zero\.pt', '{zip}': r'zip\.pt',
           '{wrongtypes}': r'wrongtypes\.pt', '{nocfg}': r'nocfg\.pt.*--cfg',
           '{out}/nothere.pt': r'nothere\.pt', '{folder}': r'folder'}
BAD_DARKNET = {'{trunc}': r'trunc\.weights', '{cut}': r'cut\.weights',
               '{text}': r'text\.weights',
               '{miniweights}': r'mini\.weights: holds \d+ floats'}
# a darknet file is read against a cfg: yolov3-mini's, or a wider one for the mismatch
DARKNET_CFG = {k: '{wide}' if k == '{miniweights}' else 'cfg/yolov3-mini.cfg'
               for k in BAD_DARKNET}

DATA_USERS = {'train': ['--weights', '{mini}', *T], 'test': ['--weights', '{mini}', *T],
              'ptq': ['--weights', '{mini}', *T], 'sensitivity': ['--weights', '{mini}', *T],
              'compress': ['--weights', '{mini}', *T],
              'kmeans': ['--generations', '5'],
              **{m: ['--weights', '{mini}', '--latency-runs', '0', *method_args(m), *T]
                 for m in PRUNE}}
DATA_NEEDS = {'train': ('train', 'valid'), 'test': ('valid',), 'ptq': ('train',),
              'sensitivity': ('train', 'valid'), 'compress': ('train', 'valid'),
              'kmeans': ('train',), **{m: ('valid',) for m in PRUNE}}
BAD_DATA = {'{notrain}': ('train', r'notrain\.data.*train'),
            '{novalid}': ('valid', r'novalid\.data.*valid'),
            '{nonames}': ('all', r'nothere\.names'), '{badclasses}': ('all', r'badclasses\.data'),
            '{missinglist}': ('all', r'nothere\.txt'), '{emptylist}': ('all', r'emptylist'),
            '{out}/nothere.data': ('all', r'nothere\.data'),
            '{binary}': ('all', r'binary\.cfg: not a text file')}

BAD_HYPS = {'{hypmissing}': r'hypmissing\.yaml', '{hypbroken}': r'hypbroken\.yaml',
            '{hyplist}': r'hyplist\.yaml', '{hypnan}': r'hypnan\.yaml.*lr0',
            '{out}/nothere.yaml': r'nothere\.yaml', '{binary}': r'binary\.cfg'}
SOURCE_USERS = {'detect': ['--weights', '{mini}', *T],
                'int_runtime': ['--weights', '{intjson}', '--dump', '{out}/dump']}
BAD_SOURCES = {'{out}/nothere.jpg': r'nothere\.jpg', '{notimage}': r'notimage\.jpg',
               '{thin}': r'thin\.jpg: .*too thin', '{zerojpg}': r'zero\.jpg',
               '{cutjpg}': r'cut\.jpg', '{emptydir}': r'emptydir'}

PROBES = [
    # cfg files: every command that reads one
    *[(c, ['--cfg', f, *a], 1, msg) for c, a in CFG_USERS.items() for f, msg in BAD_CFGS.items()],
    # checkpoints and darknet weights: every command that loads a model
    *[(c, ['--weights', f, *a], 1, msg)
      for c, a in WEIGHTS_USERS.items() for f, msg in BAD_PTS.items()
      if (c, f) != ('train', '{nocfg}')],  # train builds its default --cfg: a valid input
    *[(c, ['--cfg', DARKNET_CFG[f], '--weights', f, *a], 1, msg)
      for c, a in WEIGHTS_USERS.items() for f, msg in BAD_DARKNET.items()],
    *[('sparse24', ['--check', f, '--cfg', DARKNET_CFG[f]], 1, msg)
      for f, msg in BAD_DARKNET.items()],
    # prune plans that remove nothing
    ('slim', ['--weights', '{mini}', '--data', '{data}', '--percent', '0.5', '--round', '1000',
              *T], 1, r'removes nothing.*--round'),
    ('slim', ['--weights', '{mini}', '--data', '{data}', '--percent', '0.5', '--layer_keep',
              '0.999', *T], 1, r'removes nothing.*--layer_keep'),
    ('normal', ['--weights', '{mini}', '--data', '{data}', '--percent', '0', *T], 1,
     r'removes nothing.*--percent'),
    ('train', ['--data', '{data}', '--name', 'done', '--exist-ok', *T], 2,
     r'--exist-ok: .*done/weights holds a run'),
    # output folders that cannot be written (a file where a folder must go: root ignores modes)
    *[(c, ['--weights', '{mini}', '--project', '{notimage}/runs']
       + (['--data', '{data}'] if c in ('train', 'test', 'ptq', 'slim') else [])
       + (['--percent', '0.3'] if c == 'slim' else []), 1, r'notimage\.jpg')
      for c in ('train', 'test', 'export', 'ptq', 'slim')],
    # checkpoints that cannot resume, integer models
    ('train', ['--resume', '{random}', *T], 1, r'random\.pt'),
    ('train', ['--resume', '{stripped}', *T], 1, r'stripped\.pt'),
    ('train', ['--resume', '{out}/nothere.pt', *T], 1, r'nothere\.pt'),
    ('export_int', ['--weights', '{random}', *T], 1, r'random\.pt'),
    ('export_int', ['--weights', '{mini}', *T], 1, r'not quantized'),
    ('int_runtime', ['--weights', '{bad_int}', '--source', '{notimage}', '--dump', '{out}/d'], 1,
     r'bad_int\.json.*yolo-int/2'),
    ('int_runtime', ['--weights', '{noarrays_int}', '--source', '{notimage}', '--dump',
                     '{out}/d'], 1, r'noarrays_int\.json: missing cfg'),
    ('int_runtime', ['--weights', '{nonpz_int}', '--source', '{notimage}', '--dump', '{out}/d'],
     1, r'nonpz_int\.npz'),
    ('test', ['--weights', '{bad_int}', '--data', '{data}', *T], 1, r'bad_int\.json'),
    # .data files and the image lists they name: every command that reads a dataset
    *[(c, ['--data', f, *a], 1, msg) for c, a in DATA_USERS.items()
      for f, (breaks, msg) in BAD_DATA.items() if breaks in ('all', *DATA_NEEDS[c])],
    ('kmeans', ['--data', '{data}', '--n', '7', '--cfg', 'cfg/yolov3-mini.cfg', '--out',
                '{out}/k7.cfg', '--generations', '5'], 1, r'yolov3-mini\.cfg: 7 anchors .*--n'),
    # hyp files: train's --hyp and compress's three stage hyps
    *[(c, [flag, f, '--data', '{data}', '--weights', '{mini}', *T], 1, msg)
      for c, flag in (('train', '--hyp'), ('compress', '--hyp-sparse'),
                      ('compress', '--hyp-finetune'), ('compress', '--hyp-sparse24'))
      for f, msg in BAD_HYPS.items()],
    # images: detect's sources, the integer runtime's, export's calibration images
    *[(c, ['--source', f, *a], 1, msg) for c, a in SOURCE_USERS.items()
      for f, msg in BAD_SOURCES.items()],
    *[('export', ['--int8', '--calib-images', f, '--weights', '{mini}', *T], 1,
       r'thin\.jpg: no usable images' if f == '{thin}' else msg)  # the reason is a warning
      for f, msg in BAD_SOURCES.items()],
    # option values
    ('train', ['--epochs', '0', *T], 2, r'--epochs'),
    ('train', ['--epochs', '-3', *T], 2, r'--epochs'),
    ('train', ['--batch-size', '0', *T], 2, r'--batch-size'),
    ('train', ['--batch-size', '-1', *T], 2, r'--batch-size'),
    ('train', ['--img-size', '33', *T], 2, r'--img-size'),
    ('train', ['--img-size', '0', *T], 2, r'--img-size'),
    ('train', ['--workers', '-1', *T], 2, r'--workers'),
    ('train', ['-sr', '--s', '-1', *T], 2, r'--s'),
    ('train', ['--epochs', 'ten', *T], 2, r'--epochs'),
    ('train', ['--quantized', '4', *T], 2, r'--quantized'),
    ('train', ['--quantized', '3', '--w-bits', '17', *T], 2, r'--w-bits'),
    ('train', ['--quantized', '2', '--a-bits', '16', *T], 2, r'--a-bits'),
    ('train', ['--KDstr', '9', *T], 2, r'--KDstr'),
    ('train', ['--KDstr', '1', '--data', '{data}', *T], 2, r'--KDstr .*no teacher.*--t_weights'),
    ('train', ['--kd-weight', '2', '--data', '{data}', *T], 2, r'--kd-weight .*no teacher'),
    ('train', ['--prune', '5', *T], 2, r'--prune'),
    ('train', ['--sr-trget', '0.3', *T], 2, r'--sr-trget.*--sr-target'),
    ('train', ['--t_cfg', 'cfg/yolov3-mini.cfg', '--data', '{data}', *T], 2, r'--t_cfg'),
    ('test', ['--img-size', '33', '--weights', '{mini}', '--data', '{data}', *T], 2,
     r'--img-size'),
    ('test', ['--batch-size', '0', '--weights', '{mini}', '--data', '{data}', *T], 2,
     r'--batch-size'),
    ('test', ['--conf-thres', '2', '--weights', '{mini}', '--data', '{data}', *T], 2,
     r'--conf-thres'),
    ('test', ['--iou-thres', '-1', '--weights', '{mini}', '--data', '{data}', *T], 2,
     r'--iou-thres'),
    ('detect', ['--img-size', '33', '--weights', '{mini}', *T], 2, r'--img-size'),
    ('export', ['--img-size', '33', '--weights', '{mini}', *T], 1, r'--img-size'),
    ('export', ['--batch', '0', '--weights', '{mini}', *T], 1, r'--batch'),
    ('export', ['--format', 'tflite', '--weights', '{mini}', *T], 2, r'--format'),
    ('export', ['--format', 'c', '--weights', '{mini}', *T], 1, r'integer model'),
    ('export', ['--half', '--weights', '{mini}', '--device', 'cpu', *T], 1, r'--half'),
    ('export', ['--format', 'engine', '--weights', '{mini}', *T], 1, r'TensorRT|CUDA'),
    ('export', ['--int8', '--weights', '{mini}', *T], 1, r'--calib-images'),
    ('ptq', ['--calib', '0', '--weights', '{mini}', '--data', '{data}', *T], 2, r'--calib'),
    ('ptq', ['--percentile', '0', '--weights', '{mini}', '--data', '{data}', *T], 2,
     r'--percentile'),
    ('ptq', ['--method', 'median', *T], 2, r'--method'),
    ('ptq', ['--format', 'q4', *T], 2, r'--format'),
    ('export_int', ['--format', 'q32', '--weights', '{mini}', *T], 2, r'--format'),
    ('compress', ['--keep-bflops', '-1', '--weights', '{mini}', '--data', '{data}', *T], 2,
     r'--keep-bflops'),
    ('compress', ['--keep-bflops', '1.5', '--weights', '{mini}', '--data', '{data}', *T], 2,
     r'--keep-bflops'),
    # more option values and combinations
    ('train', ['--sr-target', '2', '-sr', *T], 2, r'--sr-target'),
    ('train', ['--sr-fade', '-1', '-sr', *T], 2, r'--sr-fade'),
    ('train', ['--kd-T', '0', *T], 2, r'--kd-T'),
    ('train', ['--quant-freeze-epoch', '-2', '--quantized', '3', *T], 2,
     r'--quant-freeze-epoch'),
    ('train', ['--t_weights', '{random}', '--t_cfg', 'cfg/yolov3-mini.cfg', '--data', '{data}',
               *T], 1, r'random\.pt'),
    ('train', ['--t_weights', '{out}/nothere.pt', '--data', '{data}', *T], 1, r'nothere\.pt'),
    ('train', ['--t_weights', '{mini}', '--t_cfg', '{typo}', '--data', '{data}', *T], 1,
     r'typo\.cfg:\d+'),
    ('train', ['--t_weights', '{trunc}', '--t_cfg', 'cfg/yolov3-mini.cfg', '--data', '{data}',
               *T], 1, r'trunc\.weights'),
    ('train', ['--t_weights', '{tiny80}', '--data', '{data}', *T], 1,
     r'teacher: 80 classes .*student: 6'),
    ('compress', ['--keep-bflops', '0.001', '--weights', '{mini}', '--data', '{data}', *T], 2,
     r'--keep-bflops 0\.001: out of reach'),
    ('train', ['--seed', 'x', *T], 2, r'--seed'),
    ('train', ['--img-size', '320', '320', '320', '320', *T], 2, r'--img-size'),
    ('train', ['--resume', '{out}/done/weights/best.pt', *T], 1, r'best\.pt'),
    ('test', ['--max-det', '0', '--weights', '{mini}', '--data', '{data}', *T], 2, r'--max-det'),
    ('test', ['--task', 'bogus', '--weights', '{mini}', '--data', '{data}', *T], 2, r'--task'),
    ('test', ['--workers', '-1', '--weights', '{mini}', '--data', '{data}', *T], 2,
     r'--workers'),
    ('detect', ['--conf-thres', '2', '--weights', '{mini}', *T], 2, r'--conf-thres'),
    ('detect', ['--iou-thres', '1.5', '--weights', '{mini}', *T], 2, r'--iou-thres'),
    ('detect', ['--max-det', '0', '--weights', '{mini}', *T], 2, r'--max-det'),
    ('detect', ['--classes', '99', '--weights', '{mini}', '--source', '{ok}', *T], 2,
     r'--classes'),
    ('detect', ['--names', '{out}/nothere.names', '--weights', '{mini}', '--source', '{ok}',
                *T], 1, r'nothere\.names'),
    ('export', ['--opset', '5', '--weights', '{mini}', *T], 2, r'--opset'),
    ('export', ['--opset', '11', '--int8', '--calib-images', '{ok}', '--weights', '{mini}', *T],
     1, r'--opset 11'),
    ('export', ['--batch', '-2', '--weights', '{mini}', *T], 1, r'--batch'),
    ('export', ['--qdq', 'bogus', '--weights', '{mini}', *T], 2, r'--qdq'),
    ('export', ['--calib', '0', '--int8', '--calib-images', '{ok}', '--weights', '{mini}', *T],
     2, r'--calib'),
    ('export', ['--dla', '0', '--weights', '{mini}', *T], 1, r'--dla'),
    ('export', ['--int-format', 'q8', '--weights', '{mini}', *T], 1, r'--int-format'),
    ('export', ['--img-size', '320', '320', '320', '--weights', '{mini}', *T], 1, r'--img-size'),
    ('ptq', ['--batch-size', '0', '--weights', '{mini}', '--data', '{data}', *T], 2,
     r'--batch-size'),
    ('ptq', ['--img-size', '33', '--weights', '{mini}', '--data', '{data}', *T], 2,
     r'--img-size'),
    ('ptq', ['--workers', '-1', '--weights', '{mini}', '--data', '{data}', *T], 2, r'--workers'),
    ('ptq', ['--percentile', '101', '--weights', '{mini}', '--data', '{data}', *T], 2,
     r'--percentile'),
    ('sensitivity', ['--calib', '0', '--weights', '{mini}', '--data', '{data}', *T], 2,
     r'--calib'),
    ('sensitivity', ['--subset', '0', '--weights', '{mini}', '--data', '{data}', *T], 2,
     r'--subset'),
    ('sensitivity', ['--max-drop', '-1', '--weights', '{mini}', '--data', '{data}', *T], 2,
     r'--max-drop'),
    ('sensitivity', ['--img-size', '33', '--weights', '{mini}', '--data', '{data}', *T], 2,
     r'--img-size'),
    ('kmeans', ['--data', '{data}', '--n', '0', '--out', '{out}/k.cfg'], 2, r'--n'),
    ('kmeans', ['--data', '{data}', '--img-size', '0', '--out', '{out}/k.cfg'], 2,
     r'--img-size'),
    ('kmeans', ['--data', '{data}', '--generations', '-1', '--out', '{out}/k.cfg'], 2,
     r'--generations'),
    ('kmeans', ['--data', '{data}', '--ratio', '0', '--out', '{out}/k.cfg'], 2, r'--ratio'),
    ('kmeans', ['--data', '{data}', '--out', '{out}/k.cfg'], 2, r'--cfg and --out'),
    ('kmeans', ['--data', '{data}', '--cfg', 'cfg/yolov3-mini.cfg'], 2, r'--cfg and --out'),
    ('kmeans', ['--data', '{data}', '--cfg', '{noyolo}', '--out', '{out}/k.cfg'], 1,
     r'noyolo\.cfg: .*no \[yolo\]'),
    ('int_runtime', ['--weights', '{intjson}', '--source', '{ok}', '--img-size', '33',
                     '--dump', '{out}/dump'], 2, r'--img-size'),
    ('int_runtime', ['--weights', '{out}/nothere_int.json', '--source', '{ok}', '--dump',
                     '{out}/dump'], 1, r'nothere_int\.json'),
    ('sparse24', [], 2, r'--check'),
    ('sparse24', ['--check', '{out}/nothere.pt'], 1, r'nothere\.pt'),
    *[(m, ['--weights', '{mini}', '--data', '{data}', *method_args(m), flag, value, *T], 2,
       flag) for m in PRUNE
      for flag, value in (('--img-size', '33'), ('--batch-size', '0'), ('--workers', '-1'),
                          ('--latency-runs', '-1'))],
    *[(m, ['--weights', '{mini}', '--data', '{data}', '--percent', v, *T], 2, r'--percent')
      for m in PRUNE if m != 'layer' for v in ('1.5', '-0.1')],
    ('layer', ['--weights', '{mini}', '--data', '{data}', '--shortcuts', '-1', *T], 2,
     r'--shortcuts'),
    ('layer', ['--weights', '{mini}', '--data', '{data}', '--shortcuts', '999', *T], 1,
     r'--shortcuts'),
    ('slim', ['--weights', '{mini}', '--data', '{data}', '--percent', '0.5', '--layer_keep',
              '1.5', *T], 2, r'--layer_keep'),
    ('normal', ['--weights', '{mini}', '--data', '{data}', '--percent', '0.5', '--round', '0',
                *T], 2, r'--round'),
    ('normal', ['--weights', '{mini}', '--data', '{data}', '--percent', '0.5', '--rank', 'x',
                *T], 2, r'--rank'),
    ('compress', ['--epochs-sparse', '0', '--weights', '{mini}', '--data', '{data}', *T], 2,
     r'--epochs-sparse'),
    ('compress', ['--round', '0', '--weights', '{mini}', '--data', '{data}', *T], 2, r'--round'),
    ('compress', ['--percent', '1', '--weights', '{mini}', '--data', '{data}', *T], 2,
     r'--percent'),
    ('compress', ['--method', 'bogus', '--weights', '{mini}', '--data', '{data}', *T], 2,
     r'--method'),
    ('compress', ['--s', '-1', '--weights', '{mini}', '--data', '{data}', *T], 2, r'--s'),
    ('compress', ['--skip', 'bogus', '--weights', '{mini}', '--data', '{data}', *T], 2,
     r'--skip'),
    ('compress', ['--img-size', '33', '--weights', '{mini}', '--data', '{data}', *T], 2,
     r'--img-size'),
    ('compress', ['--prune-mode', '3', '--weights', '{mini}', '--data', '{data}', *T], 2,
     r'--prune-mode'),
    ('compress', ['--KDstr', '9', '--weights', '{mini}', '--data', '{data}', *T], 2,
     r'--KDstr'),
    ('compress', ['--weights', '{mini}', '--cfg', 'cfg/yolov3-tiny.cfg', '--data', '{data}',
                  *T], 1, r'mini\.pt: does not fit'),
    ('train', ['--device', '7', '--data', '{data}', *T], 1, r'device|CUDA'),
    ('test', ['--device', 'tpu', '--weights', '{mini}', '--data', '{data}', *T], 1,
     r'device|tpu'),
]


def probe_id(p):
    return f"{p[0]}:{' '.join(p[1])}".replace(' --project {out}', '')


@pytest.mark.parametrize('command,args,code,message', PROBES, ids=[probe_id(p) for p in PROBES])
def test_bad_input_gets_one_line(command, args, code, message, ws, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    before = files_in(ws['out'].parent)
    exit_code = run_main(command, fill(args, ws))
    err = capsys.readouterr().err.strip()
    assert files_in(ws['out'].parent) == before, 'a failed command left or changed a file'
    assert 'Traceback' not in err and 'internal error' not in err, err[-1500:]
    assert exit_code == code, (exit_code, err[-800:])
    errors = [ln for ln in err.splitlines() if 'error:' in ln]  # ours, or argparse's prog: error:
    assert len(errors) == 1 and re.search(message, errors[0]), err[-800:]


# Each command that writes, with valid arguments apart from where it writes.
WRITERS = [('train', ['--data', '{data}', '--weights', '{mini}', '--img-size', '64']),
           ('test', ['--data', '{data}', '--weights', '{mini}', '--img-size', '64']),
           ('detect', ['--weights', '{mini}', '--source', '{ok}', '--img-size', '64']),
           ('export', ['--weights', '{mini}', '--img-size', '64']),
           ('export', ['--weights', '{mini}', '--format', 'darknet']),
           ('export', ['--weights', '{qpt}', '--format', 'c', '--img-size', '64']),
           ('ptq', ['--weights', '{mini}', '--data', '{data}', '--img-size', '64', '--calib', '8',
                    '--no-eval']),
           ('sensitivity', ['--weights', '{mini}', '--data', '{data}', '--img-size', '64',
                            '--calib', '8', '--subset', '8']),
           ('export_int', ['--weights', '{qpt}']),
           *[(m, ['--weights', '{mini}', '--data', '{data}', '--no-eval', '--latency-runs', '0',
                  *method_args(m)]) for m in PRUNE]]
RO = r'Permission denied.*/ro/'
READ_ONLY = [
    *[(c, [*a, '--project', '{ro}/runs'], 1, RO + 'runs') for c, a in WRITERS],
    *[(c, [*a, '--project', '{ro}', '--name', 'exp', '--exist-ok'], 1, RO + 'exp')
      for c, a in WRITERS],
    ('compress', ['--weights', '{mini}', '--data', '{data}', '--project', '{ro}/runs'], 1,
     RO + 'runs'),
    ('kmeans', ['--data', '{data}', '--cfg', 'cfg/yolov3-mini.cfg', '--out', '{ro}/k.cfg',
                '--generations', '5'], 1, RO + r'k\.cfg'),
    ('kmeans', ['--data', '{data}', '--cfg', 'cfg/yolov3-mini.cfg', '--out', '{ro}/new/k.cfg',
                '--generations', '5'], 1, RO + 'new'),
    ('int_runtime', ['--weights', '{intjson}', '--source', '{ok}', '--dump', '{ro}/dump'], 1,
     RO + 'dump'),
    ('int_runtime', ['--weights', '{intjson}', '--source', '{ok}', '--dump', '{ro}/exp'], 1,
     RO + r'exp/input\.npy'),
]


@pytest.mark.parametrize('command,args,code,message', READ_ONLY,
                         ids=[probe_id(p) for p in READ_ONLY])
def test_a_read_only_folder_gets_one_line_before_any_work(command, args, code, message, ws,
                                                          capsys, monkeypatch):
    """A read-only output folder (for root too) fails at once, naming the folder."""
    from tests.limits import read_only
    with read_only(ws['ro'], ws['ro'] / 'exp'):
        test_bad_input_gets_one_line(command, args, code, message, ws, capsys, monkeypatch)


FULL = r'(File too large|write failed).*: .*'
DISK_FULL = [  # (command, arguments, bytes a file may take, the file the error names)
    ('export', ['--weights', '{mini}', '--img-size', '64'], 2 ** 16, r'mini\.onnx'),
    ('export', ['--weights', '{mini}', '--format', 'darknet'], 2 ** 16, r'mini\.weights'),
    ('export', ['--weights', '{qpt}', '--format', 'c', '--img-size', '64'], 2 ** 16,
     r'weights\.c'),
    ('export_int', ['--weights', '{qpt}'], 2 ** 16, r'q_int\.npz'),
    # workers 0: the limit holds for every file, the loader's shared memory too
    ('ptq', [*WRITERS[6][1], '--workers', '0'], 2 ** 16, r'mini_ptq_entropy\.pt'),
    ('detect', ['--weights', '{mini}', '--source', '{ok}', '--img-size', '64'], 256,
     r'ok\.jpg'),
    ('kmeans', ['--data', '{data}', '--cfg', 'cfg/yolov3-mini.cfg', '--out', '{out}/k.cfg',
                '--generations', '5'], 1024, r'k\.cfg'),
    ('int_runtime', ['--weights', '{intjson}', '--source', '{ok}', '--dump', '{out}/dump',
                     '--img-size', '64'], 2 ** 12, r'dump/input\.npy'),
    *[(m, [*a, '--project', '{out}'], 2 ** 16, r'\.weights') for m, a in WRITERS[-6:]],
]


@pytest.mark.parametrize('command,args,limit,name', DISK_FULL,
                         ids=[probe_id(p) for p in DISK_FULL])
def test_a_full_disk_gets_one_line_and_leaves_no_partial_file(command, args, limit, name, ws,
                                                              capsys, monkeypatch):
    """The disk fills up while the result is written: one line naming the file, and nothing
    under a final name (the files of a set already written are removed with it)."""
    from tests.limits import disk_full_after
    args = args if '--project' in args or command in ('kmeans', 'int_runtime') else \
        [*args, '--project', '{out}']
    with disk_full_after(limit):
        test_bad_input_gets_one_line(command, args, 1, FULL + name, ws, capsys, monkeypatch)


def test_every_probe_is_different():
    for table in (PROBES, READ_ONLY, DISK_FULL):
        ids = [probe_id(p) for p in table]
        assert len(set(ids)) == len(ids)
    assert len(PROBES) + len(READ_ONLY) + len(DISK_FULL) >= 300


def test_the_suite_covers_every_command():
    covered = {p[0] for p in PROBES}
    assert covered >= set(COMMANDS) | set(PRUNE)


def test_bad_items_in_a_dataset_are_warned_counted_and_skipped(tiny_data, tmp_path, capsys,
                                                                monkeypatch):
    """Per-item problems (label lines with inf or NaN, a label path that is a folder, an image
    too thin to resize) skip their image with a warning naming it; the run goes on."""
    import shutil

    import cv2

    root = tmp_path / 'shapes'
    shutil.copytree(tiny_data.parent / 'shapes', root,
                    ignore=shutil.ignore_patterns('*.cache'))
    labels = sorted((root / 'labels' / 'val').glob('*.txt'))
    labels[0].write_text('inf 0.5 0.5 0.2 0.2\n')
    labels[1].write_text('1 nan 0.5 0.2 0.2\n')
    labels[2].unlink()
    labels[2].mkdir()
    thin = root / 'images' / 'val' / 'thin.jpg'
    cv2.imwrite(str(thin), np.zeros((1, 2000, 3), np.uint8))
    images = (root / 'val.txt').read_text().splitlines()
    (root / 'val.txt').write_text('\n'.join(str(root / 'images' / 'val' / Path(p).name)
                                            for p in images) + f'\n{thin}\n')
    data = tmp_path / 'd.data'
    data.write_text(f'classes=6\ntrain={root}/val.txt\nvalid={root}/val.txt\n'
                    f"names={ROOT / 'data' / 'shapes.names'}\n")
    import test as evaluation
    monkeypatch.chdir(ROOT)
    metrics = evaluation.run(data=str(data), weights=None, cfg=str(ROOT / 'cfg/yolov3-mini.cfg'),
                             img_size=128, project=str(tmp_path / 'runs'), plots=False,
                             verbose=False, workers=0)
    err = capsys.readouterr().err
    for bad in (labels[0].name, labels[1].name, labels[2].name, 'thin.jpg'):
        assert re.search(rf'skipped .*{bad}', err), (bad, err)
    assert re.search(r'4 skipped', err) and metrics['images'] == len(images) - 3


def test_kmeans_into_a_cfg_with_another_anchor_count_writes_a_cfg_that_builds(tiny_data,
                                                                              tmp_path):
    from data.kmeans_anchors import run
    from models import Darknet
    out = tmp_path / 'k6.cfg'
    run(str(tiny_data), n=6, img_size=128, cfg=str(ROOT / 'cfg' / 'yolov3-mini.cfg'),
        out=str(out), generations=5)
    model = Darknet(out)  # 2 anchors per head: the head convs were resized to match
    assert all(model.module_list[j].na == 2 for j in model.yolo_layers)


def test_detect_skips_the_bad_images_of_a_folder_and_runs_the_rest(tmp_path, capsys,
                                                                   monkeypatch):
    import cv2

    import detect
    folder = tmp_path / 'images'
    folder.mkdir()
    (folder / 'junk.jpg').write_text('not an image')
    cv2.imwrite(str(folder / 'thin.jpg'), np.zeros((1, 2000, 3), np.uint8))
    cv2.imwrite(str(folder / 'ok.jpg'), np.full((100, 120, 3), 127, np.uint8))
    monkeypatch.chdir(ROOT)
    detect.main(['--cfg', 'cfg/yolov3-mini.cfg', '--source', str(folder), '--project',
                 str(tmp_path / 'runs'), '--img-size', '128'])
    err = capsys.readouterr().err
    assert re.search(r'skipped .*junk\.jpg: cannot be read', err)
    assert re.search(r'skipped .*thin\.jpg: .*too thin', err)
    assert (tmp_path / 'runs' / 'exp' / 'ok.jpg').is_file()


def test_too_little_disk_for_the_checkpoints_fails_before_the_first_epoch(ws, capsys,
                                                                         monkeypatch):
    import shutil
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, 'disk_usage', lambda p: real(p)._replace(free=10 ** 6))
    test_bad_input_gets_one_line('train', ['--data', '{data}', '--weights', '{mini}', *T], 1,
                                 r'weights: 1\.0 MB free .*last\.pt and best\.pt', ws, capsys,
                                 monkeypatch)


def test_a_disk_that_fills_up_during_training_loses_no_finished_file(tiny_data, tmp_path,
                                                                     capsys, monkeypatch):
    """The first checkpoint does not fit: one line naming it, no temporary files, and what
    was written before (options, results.csv) is whole."""
    import csv

    from tests.limits import disk_full_after
    monkeypatch.chdir(ROOT)
    with disk_full_after(2 ** 18):
        code = run_main('train', ['--data', str(tiny_data), '--img-size', '64', '--epochs', '1',
                                  '--batch-size', '8', '--workers', '0', '--project',
                                  str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1 and re.search(r'error: File too large: .*weights/best\.pt', err), err[-800:]
    run = tmp_path / 'exp'
    assert not [p for p in run.rglob('.*') if p.is_file()]
    assert not list((run / 'weights').iterdir())
    with open(run / 'results.csv', newline='') as f:
        assert [r['epoch'] for r in csv.DictReader(f)] == ['0']


def test_a_read_only_weights_folder_fails_before_the_first_epoch(ws, tmp_path, capsys,
                                                                 monkeypatch):
    """The run folder takes files but its weights/ does not: refused before any epoch, not
    when the first checkpoint is due."""
    from tests.limits import read_only
    weights = tmp_path / 'exp' / 'weights'
    weights.mkdir(parents=True)
    with read_only(weights):
        test_bad_input_gets_one_line('train', ['--data', '{data}', '--weights', '{mini}',
                                               '--project', str(tmp_path), '--exist-ok'], 1,
                                     r'Permission denied .*must be writable.*exp/weights', ws,
                                     capsys, monkeypatch)
    assert not [p for p in (tmp_path / 'exp').rglob('*') if p.is_file()]
