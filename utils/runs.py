"""Run folders: runs/<task>/exp, exp2, ... never overwriting an earlier run.

Every tool's default --project is runs/<task> relative to where it runs; the environment
variable YOLO_RUNS moves that runs/ folder elsewhere (a bigger disk, or a scratch folder for
tests), for defaults and explicit runs/... projects alike.
"""
import os
from pathlib import Path

import yaml

from utils.files import atomic_write_text, check_writable


def project_dir(project) -> Path:
    """The project folder, with a leading runs/ replaced by $YOLO_RUNS when that is set."""
    project = Path(project)
    root = os.environ.get('YOLO_RUNS')
    if root and not project.is_absolute() and project.parts[:1] == ('runs',):
        return Path(root).joinpath(*project.parts[1:])
    return project


def increment_path(project, name='exp', exist_ok=False) -> Path:
    """project/name if free (or exist_ok), else project/name2, name3, ...; created.

    Creating the folder claims it (mkdir fails if another process made it first), so two runs
    started at once never share a folder. A folder that cannot take files fails here, before
    the work."""
    base = project_dir(project) / name
    base.parent.mkdir(parents=True, exist_ok=True)
    if exist_ok:
        base.mkdir(exist_ok=True)
        check_writable(base)
        return base
    path, n = base, 2
    while True:
        try:
            path.mkdir()
            return path
        except FileExistsError:
            path = base.with_name(f'{base.name}{n}')
            n += 1


def save_options(options: dict, path) -> None:
    """The resolved options of a run, as YAML (plain types only)."""
    plain = {k: (str(v) if isinstance(v, Path) else v) for k, v in options.items()}
    atomic_write_text(path, yaml.safe_dump(plain, sort_keys=False))
