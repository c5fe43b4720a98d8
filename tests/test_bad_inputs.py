"""Bad input, as a careless user types it: every probe must end in one line on stderr that names
the file or flag, a non-zero exit code, no traceback, and no partial file under a final name.

Probes run the commands' ``main`` in this process (a failure is found before any work, so a
probe costs milliseconds, not an interpreter start). A row: the command, its arguments (``{x}``
names a file of the workspace below), the exit code, and a regex the message must match.
"""
import importlib
import re
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

    def put(name, content):
        p = d / name
        p.write_bytes(content) if isinstance(content, bytes) else p.write_text(content)
        files[name.split('.')[0]] = p

    put('binary.cfg', bytes(np.random.default_rng(0).integers(0, 256, 3000, np.uint8)))
    put('empty.cfg', '')
    put('noyolo.cfg', '[net]\nwidth=64\nheight=64\nchannels=3\n\n[convolutional]\nfilters=8\n'
        'size=3\nstride=1\npad=1\nactivation=leaky\n')
    put('typo.cfg', CFG_BODY.replace('filters=16', 'filters=sixteen', 1))
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
    import cv2
    cv2.imwrite(str(d / 'thin.jpg'), np.zeros((1, 2000, 3), np.uint8))
    files['thin'] = d / 'thin.jpg'
    put('bad_int.json', '{"format": "yolo-int/1"}')
    put('noarrays_int.json', '{"format": "yolo-int/2"}')
    put('nonpz_int.json', '{"format": "yolo-int/2", "cfg": "", "number_format": "q8", '
        '"input": {}, "layers": [], "outputs": []}')
    return files


def fill(args, ws):
    return [a.format(**{k: str(v) for k, v in ws.items()}) for a in args]


def run_main(command, argv):
    module = f'{command}_prune' if command in PRUNE else COMMANDS[command]
    main = importlib.import_module(module).main
    with pytest.raises(SystemExit) as e:
        main(argv)
    return e.value.code


T = '--project {out}'.split()  # every command that writes, writes into the workspace
PROBES = [
    # cfg files
    ('train', ['--cfg', '{binary}', '--data', '{data}', *T], 1, r'binary\.cfg: not a text file'),
    ('train', ['--cfg', '{empty}', '--data', '{data}', *T], 1, r'empty\.cfg'),
    ('train', ['--cfg', '{noyolo}', '--data', '{data}', *T], 1, r'noyolo\.cfg.*no \[yolo\]'),
    ('train', ['--cfg', '{typo}', '--data', '{data}', *T], 1, r'typo\.cfg:\d+.*filters'),
    ('train', ['--cfg', '{badkey}', '--data', '{data}', *T], 1, r'badkey\.cfg:\d+.*leakyy'),
    ('train', ['--cfg', '{badroute}', '--data', '{data}', *T], 1, r'badroute\.cfg:\d+'),
    ('train', ['--cfg', '{out}/nothere.cfg', '--data', '{data}', *T], 1, r'nothere\.cfg'),
    ('test', ['--cfg', '{binary}', '--data', '{data}', *T], 1, r'binary\.cfg: not a text file'),
    ('detect', ['--cfg', '{typo}', *T], 1, r'typo\.cfg:\d+'),
    ('export', ['--cfg', '{badkey}', '--weights', '{miniweights}', *T], 1, r'badkey\.cfg:\d+'),
    ('ptq', ['--cfg', '{noyolo}', '--weights', '{miniweights}', '--data', '{data}', *T], 1,
     r'noyolo\.cfg'),
    ('kmeans', ['--data', '{data}', '--cfg', '{binary}', '--out', '{out}/k.cfg'], 1,
     r'binary\.cfg'),
    *[(m, ['--cfg', '{binary}', '--weights', '{mini}', '--data', '{data}']
       + (['--percent', '0.5'] if m != 'layer' else ['--shortcuts', '2']), 1, r'binary\.cfg')
      for m in PRUNE],
    ('slim', ['--weights', '{mini}', '--data', '{data}', '--percent', '0.5', '--round', '1000',
              *T], 1, r'removes nothing.*--round'),
    ('slim', ['--weights', '{mini}', '--data', '{data}', '--percent', '0.5', '--layer_keep', '2',
              *T], 1, r'removes nothing.*--layer_keep'),
    ('normal', ['--weights', '{mini}', '--data', '{data}', '--percent', '0', *T], 1,
     r'removes nothing.*--percent'),
    ('train', ['--data', '{data}', '--name', 'done', '--exist-ok', *T], 2,
     r'--exist-ok: .*done/weights holds a run'),
    # output folders that cannot be written (a file where a folder must go: root ignores modes)
    *[(c, ['--weights', '{mini}', '--project', '{notimage}/runs']
       + (['--data', '{data}'] if c in ('train', 'test', 'ptq', 'slim') else [])
       + (['--percent', '0.3'] if c == 'slim' else []), 1, r'notimage\.jpg')
      for c in ('train', 'test', 'export', 'ptq', 'slim')],
    # weights and checkpoints
    *[(c, ['--weights', '{random}', *T] + (['--data', '{data}'] if c in ('train', 'test') else []),
       1, r'random\.pt') for c in ('train', 'test', 'detect', 'export')],
    *[(c, ['--weights', '{zero}', *T] + (['--data', '{data}'] if c in ('train', 'test') else []),
       1, r'zero\.pt') for c in ('train', 'test', 'detect', 'export')],
    ('train', ['--weights', '{zip}', '--data', '{data}', *T], 1, r'zip\.pt'),
    ('train', ['--weights', '{wrongtypes}', '--data', '{data}', *T], 1, r'wrongtypes\.pt'),
    ('test', ['--weights', '{wrongtypes}', '--data', '{data}', *T], 1, r'wrongtypes\.pt'),
    ('test', ['--weights', '{nocfg}', '--data', '{data}', *T], 1, r'nocfg\.pt.*--cfg'),
    ('export', ['--weights', '{nocfg}', *T], 1, r'nocfg\.pt.*--cfg'),
    ('train', ['--resume', '{random}', *T], 1, r'random\.pt'),
    ('train', ['--resume', '{stripped}', *T], 1, r'stripped\.pt'),
    ('train', ['--resume', '{out}/nothere.pt', *T], 1, r'nothere\.pt'),
    ('train', ['--cfg', 'cfg/yolov3-mini.cfg', '--weights', '{trunc}', '--data', '{data}', *T],
     1, r'trunc\.weights'),
    ('train', ['--cfg', 'cfg/yolov3-mini.cfg', '--weights', '{cut}', '--data', '{data}', *T],
     1, r'cut\.weights'),
    ('test', ['--cfg', 'cfg/yolov3-mini.cfg', '--weights', '{text}', '--data', '{data}', *T],
     1, r'text\.weights'),
    ('export', ['--cfg', 'cfg/yolov3-tiny.cfg', '--weights', '{miniweights}', *T], 1,
     r'mini\.weights'),
    ('ptq', ['--weights', '{random}', '--data', '{data}', *T], 1, r'random\.pt'),
    ('export_int', ['--weights', '{random}', *T], 1, r'random\.pt'),
    ('export_int', ['--weights', '{mini}', *T], 1, r'not quantized'),
    ('sensitivity', ['--weights', '{random}', '--data', '{data}', *T], 1, r'random\.pt'),
    ('sparse24', ['--check', '{random}'], 1, r'random\.pt'),
    ('int_runtime', ['--weights', '{bad_int}', '--source', '{notimage}', '--dump', '{out}/d'], 1,
     r'bad_int\.json.*yolo-int/2'),
    ('int_runtime', ['--weights', '{noarrays_int}', '--source', '{notimage}', '--dump',
                     '{out}/d'], 1, r'noarrays_int\.json: missing cfg'),
    ('int_runtime', ['--weights', '{nonpz_int}', '--source', '{notimage}', '--dump', '{out}/d'],
     1, r'nonpz_int\.npz'),
    ('test', ['--weights', '{bad_int}', '--data', '{data}', *T], 1, r'bad_int\.json'),
    *[(m, ['--weights', '{random}', '--data', '{data}']
       + (['--percent', '0.5'] if m != 'layer' else ['--shortcuts', '2']), 1, r'random\.pt')
      for m in PRUNE],
    # .data files and lists
    ('train', ['--data', '{notrain}', '--weights', '{mini}', *T], 1, r'notrain\.data.*train'),
    ('test', ['--data', '{novalid}', '--weights', '{mini}', *T], 1, r'novalid\.data.*valid'),
    ('train', ['--data', '{badclasses}', '--weights', '{mini}', *T], 1, r'badclasses\.data'),
    ('train', ['--data', '{nonames}', '--weights', '{mini}', *T], 1, r'nothere\.names'),
    ('test', ['--data', '{nonames}', '--weights', '{mini}', *T], 1, r'nothere\.names'),
    ('train', ['--data', '{missinglist}', '--weights', '{mini}', *T], 1, r'nothere\.txt'),
    ('train', ['--data', '{emptylist}', '--weights', '{mini}', *T], 1, r'emptylist'),
    ('test', ['--data', '{out}/nothere.data', '--weights', '{mini}', *T], 1, r'nothere\.data'),
    ('ptq', ['--data', '{notrain}', '--weights', '{mini}', *T], 1, r'notrain\.data'),
    ('kmeans', ['--data', '{emptylist}'], 1, r'emptylist'),
    ('kmeans', ['--data', '{data}', '--n', '7', '--cfg', 'cfg/yolov3-mini.cfg', '--out',
                '{out}/k7.cfg', '--generations', '5'], 1, r'yolov3-mini\.cfg: 7 anchors .*--n'),
    ('compress', ['--data', '{novalid}', '--weights', '{mini}', *T], 1, r'novalid\.data'),
    # hyp files
    ('train', ['--hyp', '{hypmissing}', '--data', '{data}', '--weights', '{mini}', *T], 1,
     r'hypmissing\.yaml'),
    ('train', ['--hyp', '{hypbroken}', '--data', '{data}', '--weights', '{mini}', *T], 1,
     r'hypbroken\.yaml'),
    ('train', ['--hyp', '{hyplist}', '--data', '{data}', '--weights', '{mini}', *T], 1,
     r'hyplist\.yaml'),
    ('train', ['--hyp', '{hypnan}', '--data', '{data}', '--weights', '{mini}', *T], 1,
     r'hypnan\.yaml.*lr0'),
    ('train', ['--hyp', '{out}/nothere.yaml', '--data', '{data}', *T], 1, r'nothere\.yaml'),
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
    ('detect', ['--weights', '{mini}', '--source', '{out}/nothere.jpg', *T], 1, r'nothere\.jpg'),
    ('detect', ['--weights', '{mini}', '--source', '{notimage}', *T], 1, r'notimage\.jpg'),
    ('detect', ['--weights', '{mini}', '--source', '{thin}', *T], 1, r'thin\.jpg: .*too thin'),
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
    ('train', ['--device', '7', '--data', '{data}', *T], 1, r'device|CUDA'),
    ('test', ['--device', 'tpu', '--weights', '{mini}', '--data', '{data}', *T], 1,
     r'device|tpu'),
]


def probe_id(p):
    return f"{p[0]}:{' '.join(p[1][:2])}"


@pytest.mark.parametrize('command,args,code,message', PROBES, ids=[probe_id(p) for p in PROBES])
def test_bad_input_gets_one_line(command, args, code, message, ws, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    exit_code = run_main(command, fill(args, ws))
    err = capsys.readouterr().err.strip()
    assert 'Traceback' not in err and 'internal error' not in err, err[-1500:]
    assert exit_code == code, (exit_code, err[-800:])
    errors = [ln for ln in err.splitlines() if 'error:' in ln]  # ours, or argparse's prog: error:
    assert len(errors) == 1 and re.search(message, errors[0]), err[-800:]


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


def killed_at_rename(command, pattern, cwd, timeout=120):
    """Run a command with YOLO_PAUSE_BEFORE_RENAME=pattern, SIGKILL it when it pauses there;
    returns its stderr so far."""
    import os
    import signal
    import subprocess
    import sys
    env = {**os.environ, 'YOLO_PAUSE_BEFORE_RENAME': pattern}
    p = subprocess.Popen([sys.executable, *command], cwd=cwd, env=env, text=True,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    lines = []
    for line in p.stderr:  # blocks until the pause line or the end
        lines.append(line)
        if line.startswith('paused before renaming'):
            p.send_signal(signal.SIGKILL)
            break
    p.wait(timeout)
    assert p.returncode == -signal.SIGKILL, ''.join(lines)[-1500:]
    return ''.join(lines)


def test_a_kill_while_an_export_is_written_leaves_no_partial_file(ws, tmp_path):
    """SIGKILL at the worst moment (the file written, not yet renamed): nothing under the final
    name (a hidden temporary file may stay); the integer export's json, written last, is
    missing, so its set reads as incomplete."""
    killed_at_rename(['export.py', '--weights', str(ws['mini']), '--project', str(tmp_path),
                      '--name', 'onnx'], '*.onnx', ROOT)
    left = [p.name for p in (tmp_path / 'onnx').iterdir()]
    assert 'mini.onnx' not in left and all(n.startswith('.mini.onnx.') for n in left), left
    model = _built('yolov3-mini')
    from quantize.config import QuantConfig
    from tests.test_export_int import quantized
    q = quantized('yolov3-mini', QuantConfig(mode=3))
    ckpt = tmp_path / 'q.pt'
    save_checkpoint({'cfg': model.cfg_text, 'model': q.state_dict(), 'quant': q.quant_config},
                    ckpt)
    killed_at_rename(['quantize/export_int.py', '--weights', str(ckpt), '--project',
                      str(tmp_path), '--name', 'int'], '*_int.json', ROOT)
    left = [p.name for p in (tmp_path / 'int').iterdir()]
    assert 'q_int.npz' in left and 'q_int.json' not in left, left  # the json marks a whole set
