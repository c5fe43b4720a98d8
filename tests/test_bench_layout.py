"""bench/ is a package grouped by purpose; each bench names the page it feeds, and what it
writes carries the commit and machine it ran on."""
import ast
import re
import json
import subprocess

from bench.provenance import caption, write_result
from tests.conftest import ROOT

GROUPS = ('speed', 'peers', 'experiments')


def bench_modules():
    return [p for p in (ROOT / 'bench').rglob('*.py') if p.name != '__init__.py']


def test_every_bench_sits_in_a_group_and_names_its_results_page():
    helpers = {'provenance.py', 'subset.py'}  # shared by the groups, at the top
    for path in bench_modules():
        rel = path.relative_to(ROOT / 'bench')
        if rel.name in helpers and len(rel.parts) == 1:
            continue
        assert rel.parts[0] in GROUPS, f'bench/{rel}: put it in one of {GROUPS}'
        doc = ast.get_docstring(ast.parse(path.read_text())) or ''
        assert 'Feeds ' in doc, f'bench/{rel}: its docstring says which results page it feeds'
    for group in GROUPS:
        assert ast.get_docstring(ast.parse((ROOT / 'bench' / group / '__init__.py').read_text()))


def test_no_bench_writes_its_result_without_provenance():
    """Result files (written indented, for people) go through write_result; the compact
    caches and inputs a bench writes for itself (ground truth, finished rows) may not."""
    for path in bench_modules():
        if path.name == 'provenance.py':
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, 'attr', '') in ('write_text',
                                                                                 'dump'):
                written = ast.unparse(node)
                assert 'indent=' not in written and not written.startswith('json.dump('), \
                    f'{path.relative_to(ROOT)}: {written[:60]}... write results with write_result'


def test_a_result_names_its_commit_and_machine(tmp_path, capsys):
    head = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=ROOT, capture_output=True,
                          text=True).stdout.strip()
    stamp = write_result(tmp_path / 'sub' / 'r.json', {'rows': [1, 2]})
    saved = json.loads((tmp_path / 'sub' / 'r.json').read_text())
    assert saved['rows'] == [1, 2] and saved['provenance'] == stamp
    assert stamp['commit'] == head and len(head) == 40
    assert stamp['machine']['cpu'] and stamp['machine']['cores'] >= 1
    assert capsys.readouterr().out.strip() == caption(stamp)
    assert caption(stamp).startswith(f'commit {head[:7]}')


def _git(*args):
    return subprocess.run(['git', *args], cwd=ROOT, capture_output=True, text=True)


def test_every_results_table_names_the_commit_it_came_from():
    """A table in docs/results has, in the lines just above it, the commit that produced or
    recorded it (a bench's caption line, or 'Recorded in commit ...'), and that commit exists."""
    stamp = re.compile(r'commit ([0-9a-f]{7,40})')
    shallow = _git('rev-parse', '--is-shallow-repository').stdout.strip() != 'false'
    for path in sorted((ROOT / 'docs' / 'results').glob('*.md')):
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines[:-1]):
            starts = line.startswith('|') and re.match(r'^\|[-:| ]+\|\s*$', lines[i + 1]) \
                and not lines[i - 1].startswith('|')
            if not starts:
                continue
            found = [m.group(1) for above in lines[max(0, i - 6):i]
                     for m in [stamp.search(above)] if m]
            assert found, f'{path.name}:{i + 1}: name the commit the table came from'
            if not shallow:
                assert _git('cat-file', '-e', f'{found[-1]}^{{commit}}').returncode == 0, \
                    f'{path.name}:{i + 1}: commit {found[-1]} is not in this repository'
