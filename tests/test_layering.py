"""The import direction of the code base: each layer imports only from the layers below it.

    data/drawn, data/make_shapes.py (0)  <-  utils (1)  <-  models (2)
    <-  quantize | prune | distill (3, never each other)
    <-  the commands: train, test, detect, export, the prune scripts, quantize/ptq.py,
        quantize/export_int.py, data tools (4)  <-  compress (5)  <-  bench, tests (on top)

quantize/loader.py, which rebuilds quantized checkpoints, sits at the quantize level (it needs
models and quantize, and nothing below imports it); the prune scripts load float models only.
The commands train and export are packages (train/, export/) behind their thin root scripts;
no module outside tests/ imports a root script (tests call the commands the way users do).
Nothing outside bench/ and tests/ imports bench/, and no module patches sys.path.
"""
import ast

import pytest

from tests.conftest import ROOT

PACKAGES = ('utils', 'data', 'models', 'quantize', 'prune', 'distill', 'train', 'export',
            'compress')
COMMANDS = {'train', 'test', 'detect', 'export', 'compress'}
SCRIPTS = {'prune/__main__.py',
           'quantize/ptq.py', 'quantize/export_int.py', 'quantize/sensitivity.py',
           'data/kmeans_anchors.py', 'data/coco2yolo.py', 'data/voc2yolo.py', 'data/fetch.py',
           'models/__main__.py'}
LEVEL = {'data': 0, 'utils': 1, 'models': 2, 'quantize': 3, 'prune': 3, 'distill': 3,
         'train': 4, 'test': 4, 'detect': 4, 'export': 4, 'compress': 5}
SIBLINGS = {'quantize', 'prune', 'distill'}  # independent of each other


def sources():
    files = [p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob('*.py'))]
    files += [ROOT / f'{c}.py' for c in sorted(COMMANDS)]
    files += sorted(ROOT.glob('*_prune.py'))
    # a fixed order: pytest-xdist workers must collect the same list
    return files


def imported(path):
    """Top-level names of our own modules that a file imports (anywhere in it)."""
    tree = ast.parse(path.read_text())
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.append(node.module)
    return [n for n in names if n.split('.')[0] in LEVEL or n.split('.')[0] == 'bench']


def level_of(path):
    rel = path.relative_to(ROOT).as_posix()
    if rel in SCRIPTS or rel.endswith('_prune.py'):
        return LEVEL['train']
    return LEVEL[rel.split('/')[0].removesuffix('.py')]


@pytest.mark.parametrize('path', sources(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_imports_point_down(path):
    own, level = path.relative_to(ROOT).parts[0].removesuffix('.py'), level_of(path)
    for name in imported(path):
        top = name.split('.')[0]
        assert top != 'bench', f'{path.name} imports {name}: nothing outside bench/ and tests/ may'
        assert name != 'test', f'{path.name} imports the test.py script (use utils.evaluate)'
        if top == own:
            continue
        assert LEVEL[top] < level, \
            f'{path.relative_to(ROOT)} (level {level}) imports {name} (level {LEVEL[top]})'
        assert not (own in SIBLINGS and top in SIBLINGS), \
            f'{path.relative_to(ROOT)}: {own}/ and {top}/ must not import each other'


def root_scripts():
    """The commands that are files at the root and not also a package of that name."""
    return {p.stem for p in ROOT.glob('*.py') if not (ROOT / p.stem / '__init__.py').is_file()}


def imported_roots(path, scripts):
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.append(node.module)
    return [n for n in names if n.split('.')[0] in scripts]


@pytest.mark.parametrize('path', sources() + sorted((ROOT / 'bench').rglob('*.py')),
                         ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_module_imports_a_root_script(path):
    found = imported_roots(path, root_scripts())
    assert not found, f'{path.relative_to(ROOT)} imports the root script(s) {found}: import ' \
        'the package that holds the code'


def test_a_root_script_import_is_caught(tmp_path):
    f = tmp_path / 'x.py'
    f.write_text('def f():\n    import slim_prune\n    from detect import run\n')
    assert imported_roots(f, root_scripts()) == ['slim_prune', 'detect']
    assert {'train', 'export', 'compress'}.isdisjoint(root_scripts())  # packages now


def test_no_module_patches_sys_path():
    offenders = [p.relative_to(ROOT).as_posix() for p in
                 sources() + sorted((ROOT / 'bench').rglob('*.py'))
                 if 'sys.path' in p.read_text()]
    assert not offenders


def test_a_reverse_edge_is_caught(tmp_path):
    """The walker sees imports inside functions too (the lazy ones are the usual offenders)."""
    f = tmp_path / 'x.py'
    f.write_text('def f():\n    from quantize.qat import quantize_model\n')
    assert imported(f) == ['quantize.qat']
