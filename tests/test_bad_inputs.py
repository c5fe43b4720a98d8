"""Bad input, as a careless user types it: every probe must end in one line on stderr that names
the file or flag, a non-zero exit code, no traceback, and no partial file under a final name
(the workspace and the runner: tests/bad_input.py).
"""
import re

import pytest

from tests.bad_input import COMMANDS, PRUNE, TAMPERED, T, method_args, one_line, probe_id

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
BAD_PTS = {'{random}': r'random\.pt: not a checkpoint', '{zero}': r'zero\.pt',
           '{zip}': r'zip\.pt: not a checkpoint',
           '{wrongtypes}': r'wrongtypes\.pt', '{nocfg}': r'nocfg\.pt.*--cfg',
           '{out}/nothere.pt': r'nothere\.pt', '{folder}': r'folder'}
BAD_DARKNET = {'{trunc}': r'trunc\.weights', '{cut}': r'cut\.weights',
               '{short18}': r'short18\.weights: 18 bytes is too short for a darknet header',
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
            '{binary}': ('all', r'binary\.cfg: not a text file'),
            '{segzero}': ('all', r'segzero\.data: seg_classes=0 beside seg_names='),
            '{negclasses}': ('all', r'negclasses\.data: classes=-6 must be 0 or more')}

BAD_HYPS = {'{hypmissing}': r'hypmissing\.yaml', '{hypbroken}': r'hypbroken\.yaml',
            '{hyplist}': r'hyplist\.yaml', '{hypnan}': r'hypnan\.yaml.*lr0',
            '{out}/nothere.yaml': r'nothere\.yaml', '{binary}': r'binary\.cfg'}
SOURCE_USERS = {'detect': ['--weights', '{mini}', *T],
                'int_runtime': ['--weights', '{intjson}', '--dump', '{out}/dump']}
BAD_SOURCES = {'{out}/nothere.jpg': r'nothere\.jpg', '{notimage}': r'notimage\.jpg',
               '{thin}': r'thin\.jpg: .*too thin', '{zerojpg}': r'zero\.jpg',
               '{cutjpg}': r'cut\.jpg', '{emptydir}': r'emptydir'}

INT_USERS = {'int_runtime': ['--source', '{ok}', '--dump', '{out}/d'],
             'test': ['--data', '{data}', *T], 'detect': ['--source', '{ok}', *T]}

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
    # quantized checkpoints whose quantization config was edited: the commands that run them
    *[(c, ['--weights', f, *a], 1, msg)
      for c, a in (('test', ['--data', '{data}', *T]), ('detect', ['--source', '{ok}', *T]),
                   ('export', [*T]), ('export_int', [*T]))
      for f, msg in (('{strayq}', r"strayq\.pt: .*unknown key 'bogus'"),
                     ('{textbits}', r'textbits\.pt: its quantization config'))],
    ('export', ['--weights', '{intjson}', '--format', 'c', *T], 1,
     r'_int\.json: an integer model .*not a checkpoint'),
    # exported models where the checkpoint they came from is needed: said as such
    *[(c, ['--weights', f, *a], 1, msg)
      for c, a in [(c, a) for c, a in WEIGHTS_USERS.items() if c not in ('test', 'detect',
                                                                        'train')]
      + [('export', ['--format', 'onnx', *T])]
      for f, msg in (('{intjson}', r'_int\.json: an integer model .*not a checkpoint'),
                     ('{randomonnx}', r'random\.onnx: an ONNX graph, not a checkpoint'),
                     ('{irxml}', r'ir\.xml: an OpenVINO IR, not a checkpoint'))
      if (c, f) != ('export', '{intjson}')],
    ('detect', ['--weights', '{mini}', '--names', '{onename}', '--source', '{ok}', *T], 1,
     r'onename\.names \(--names\): 1 names for a 6-class model'),
    # integer models edited after they were written: each command that reads one
    *[(c, ['--weights', f'{{int_{name}}}', *a], 1, msg)
      for c, a in INT_USERS.items() for name, (_, msg) in TAMPERED.items()],
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
    # numbers that are not numbers: every float flag refuses NaN and infinity
    *[(c, [flag, v, *a], 2, re.escape(flag))
      for v in ('nan', 'inf', '-inf')
      for c, flag, a in (
          ('train', '--s', ['-sr', '--data', '{data}', *T]),
          ('train', '--kd-weight', ['--t_weights', '{mini}', '--data', '{data}', *T]),
          ('train', '--sr-target', ['-sr', '--data', '{data}', *T]),
          ('train', '--kd-T', ['--t_weights', '{mini}', '--data', '{data}', *T]),
          ('compress', '--s', ['--weights', '{mini}', '--data', '{data}', *T]),
          ('compress', '--sr-fade', ['--weights', '{mini}', '--data', '{data}', *T]),
          ('compress', '--kd-weight', ['--weights', '{mini}', '--data', '{data}', *T]),
          ('test', '--conf-thres', ['--weights', '{mini}', '--data', '{data}', *T]),
          ('detect', '--conf-thres', ['--weights', '{mini}', '--source', '{ok}', *T]),
          ('sensitivity', '--max-drop', ['--weights', '{mini}', '--data', '{data}', *T]))],
    ('sparse24', ['--check', '{randomonnx}'], 1, r'random\.onnx: not a readable ONNX graph'),
    ('sparse24', ['--check', '{mini}', '--cfg', 'cfg/yolov3-mini.cfg'], 2,
     r'--cfg is for darknet \.weights'),
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
    # sizes no machine holds, and counts that do not fit what they count
    *[(c, ['--img-size', v, *a], 2, r'--img-size.*at most 8192')
      for v in ('65536', '100000', '1000000')
      for c, a in (('train', ['--data', '{data}', *T]),
                   ('test', ['--weights', '{mini}', '--data', '{data}', *T]),
                   ('detect', ['--weights', '{mini}', '--source', '{ok}', *T]),
                   ('ptq', ['--weights', '{mini}', '--data', '{data}', *T]),
                   ('compress', ['--weights', '{mini}', '--data', '{data}', *T]))],
    ('export', ['--img-size', '65536', '--weights', '{mini}', *T], 1, r'--img-size .*8192'),
    ('train', ['--img-size', '128', '96', '64', '--data', '{data}', *T], 2,
     r'--img-size 128 96 64: one size \(or N N TEST\); MIN MAX \[TEST\] is for --multi-scale'),
    ('train', ['--img-size', '128', '96', '--multi-scale', '--data', '{data}', *T], 2,
     r'MIN below MAX'),
    ('train', ['--img-size', '128', '128', '128', '--multi-scale', '--data', '{data}', *T], 2,
     r'MIN below MAX'),
    ('train', ['--img-size', '128', '--multi-scale', '--data', '{data}', *T], 2,
     r'--multi-scale takes MIN MAX'),
    ('test', ['--img-size', '128', '128', '128', '--weights', '{mini}', '--data', '{data}', *T],
     2, r'give one size'),
    ('detect', ['--img-size', '128', '128', '--weights', '{mini}', '--source', '{ok}', *T], 2,
     r'give one size'),
    ('kmeans', ['--data', '{data}', '--n', '1000', '--generations', '5'], 1,
     r'distinct box sizes cannot make 1000 anchors'),
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
    ('int_runtime', ['--weights', '{intjson}', '--source', '{ok}', '--dump', '{dumped}'], 1,
     r'--dump .*dumped: holds files already'),
    ('int_runtime', ['--weights', '{intjson}', '--source', '{ok}', '--dump', '{ok}'], 1,
     r'--dump .*ok\.jpg: not a folder'),
    ('compress', ['--data', '{data}', '--latency-runs', '0', *T], 2,
     r'--latency-runs 0: 1 or more \(or --skip latency\)'),
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


@pytest.mark.parametrize('command,args,code,message', PROBES, ids=[probe_id(p) for p in PROBES])
def test_bad_input_gets_one_line(command, args, code, message, ws, capsys, monkeypatch):
    one_line(command, args, code, message, ws, capsys, monkeypatch)


def test_every_probe_is_different():
    ids = [probe_id(p) for p in PROBES]
    assert len(set(ids)) == len(ids) and len(ids) >= 300


def test_the_suite_covers_every_command():
    covered = {p[0] for p in PROBES}
    assert covered >= set(COMMANDS) | set(PRUNE)
