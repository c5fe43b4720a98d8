"""Project hygiene: CI runs the README's test command."""
import re

from tests.conftest import ROOT


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / 'README.md').read_text()
    quick = readme.split('## Quick start', 1)[1].split('\n## ', 1)[0]
    commands = re.findall(r'```bash\n(.*?)\n```', quick, re.S)
    test_cmd = next(c for c in commands if 'pytest' in c).strip()
    ci = (ROOT / '.ci' / 'run').read_text()
    assert test_cmd.replace('python3', 'python') in ci.replace('python3', 'python')
