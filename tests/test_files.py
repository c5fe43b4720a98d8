"""utils/files.py: atomic writes, whole-or-none sets, and the sweep of killed writers' leftovers."""
import os
import subprocess
import sys

import pytest

from utils.files import atomic_path, atomic_write_text, whole_or_none


def dead_pid():
    p = subprocess.Popen([sys.executable, '-c', 'pass'])
    p.wait()
    return p.pid


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    atomic_write_text(tmp_path / 'a.txt', 'old')
    with pytest.raises(RuntimeError), atomic_path(tmp_path / 'a.txt') as tmp:
        tmp.write_text('half')
        raise RuntimeError
    assert [p.name for p in tmp_path.iterdir()] == ['a.txt']
    assert (tmp_path / 'a.txt').read_text() == 'old'


def test_the_first_write_into_a_folder_sweeps_only_dead_writers_temporaries(tmp_path):
    dead = tmp_path / f'.best.pt.tmp{dead_pid()}.abcd1234.pt'
    live = tmp_path / f'.best.pt.tmp{os.getpid()}.efgh5678.pt'
    other = tmp_path / '.hidden.tmp1.notours'  # not our pattern: left alone
    for f in (dead, live, other):
        f.write_text('x')
    atomic_write_text(tmp_path / 'x.txt', 'y')
    assert not dead.exists() and live.exists() and other.exists()


def test_a_dead_writers_scratch_folder_is_swept_too(tmp_path):
    """export.py --format openvino writes into a scratch folder named like a temporary file."""
    dead = tmp_path / f'.m.tmp{dead_pid()}.abcd1234'
    live = tmp_path / f'.m.tmp{os.getpid()}.efgh5678'
    for d in (dead, live):
        d.mkdir()
        (d / 'graph.xml').write_text('x')
    atomic_write_text(tmp_path / 'x.txt', 'y')
    assert not dead.exists() and (live / 'graph.xml').exists()


def test_a_set_that_fails_halfway_removes_what_it_wrote_and_keeps_what_was_there(tmp_path):
    atomic_write_text(tmp_path / 'old.cfg', 'kept')
    with pytest.raises(OSError), whole_or_none([tmp_path / 'old.cfg', tmp_path / 'new.weights']):
        atomic_write_text(tmp_path / 'new.weights', 'written')
        raise OSError(28, 'No space left on device')
    assert [p.name for p in tmp_path.iterdir()] == ['old.cfg']
