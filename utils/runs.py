"""Run folders: runs/<task>/exp, exp2, ... never overwriting an earlier run."""
from pathlib import Path

import yaml


def increment_path(project, name='exp', exist_ok=False) -> Path:
    """project/name if free (or exist_ok), else project/name2, name3, ...; created."""
    base = Path(project) / name
    path, n = base, 2
    while path.exists() and not exist_ok:
        path = base.with_name(f'{base.name}{n}')
        n += 1
    path.mkdir(parents=True, exist_ok=True)
    return path


def save_options(options: dict, path) -> None:
    """The resolved options of a run, as YAML (plain types only)."""
    plain = {k: (str(v) if isinstance(v, Path) else v) for k, v in options.items()}
    Path(path).write_text(yaml.safe_dump(plain, sort_keys=False))
