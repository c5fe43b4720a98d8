"""Project hygiene: the README's two commands, CI running its test command, one dependency list,
and a reference page for every command that lists every one of its flags."""
import re
import tomllib

from tests.conftest import ROOT


def readme_commands():
    readme = (ROOT / 'README.md').read_text()
    block = re.search(r'```bash\n(.*?)\n```', readme, re.S).group(1)
    return [line.split('#')[0].strip() for line in block.splitlines() if line.strip()]


def test_the_readme_starts_with_two_commands_and_ci_runs_the_second():
    assert readme_commands() == ['make', 'make test']
    ci = [line.strip() for line in (ROOT / '.ci' / 'run').read_text().splitlines()]
    assert 'make test' in ci
    makefile = (ROOT / 'Makefile').read_text()
    assert re.search(r'^all: compress$', makefile, re.M) and 'compress.py' in makefile


def test_the_readme_stays_short():
    assert len((ROOT / 'README.md').read_text().splitlines()) < 300


def test_pyproject_lists_requirements_txt():
    deps = tomllib.loads((ROOT / 'pyproject.toml').read_text())['project']['dependencies']
    reqs = [line.strip() for line in (ROOT / 'requirements.txt').read_text().splitlines()
            if line.strip() and not line.startswith('#')]
    assert sorted(deps) == sorted(reqs)


def _flags(parser):
    return [s for a in parser._actions for s in a.option_strings if s not in ('-h', '--help')]


def test_every_flag_is_in_its_reference_page():
    import compress
    import detect
    import export
    import test as evaluation
    import train
    from prune import runner
    from prune.methods import METHODS
    from data import fetch
    from quantize import export_int, ptq, sensitivity
    from utils.options import Parser
    parsers = {'train': train.TrainOptions.add_fields(Parser()), 'compress': compress.parser(),
               'test': evaluation.parser(), 'detect': detect.parser(), 'export': export.parser(),
               'quantize': ptq.parser(), 'quantize:int': export_int.parser(),
               'quantize:sensitivity': sensitivity.parser(), 'data': fetch.parser()}
    parsers |= {f'prune:{m}': runner.parser(m, 'x') for m in METHODS}
    for name, parser in parsers.items():
        page = (ROOT / 'docs' / 'reference' / f"{name.split(':')[0]}.md").read_text()
        missing = [f for f in _flags(parser) if f'`{f}`' not in page]
        assert not missing, (name, missing)
