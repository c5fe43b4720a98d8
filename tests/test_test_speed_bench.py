"""bench/speed/test_speed.py: each checkout evaluates in its own process, and the rows carry
its mAP."""
import re

from bench.speed import test_speed
from tests.conftest import ROOT


def test_two_checkouts_take_turns_and_report_their_map(tiny_data, capsys):
    test_speed.main(['--against', str(ROOT), '--data', str(tiny_data), '--img-size', '128',
                     '--batch-size', '4', '--workers', '0', '--rounds', '1'])
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split(':')[0] for line in lines] == ['this checkout', str(ROOT)]
    maps = [re.search(r'mAP@0.5 ([\d.]+) mAP@0.5:0.95 ([\d.]+)', line).groups() for line in lines]
    assert maps[0] == maps[1] and float(maps[0][0]) > 0  # the same code on the same images
    assert all(len(re.search(r'rounds ([\d. /]+);', line).group(1).split('/')) == 1
               for line in lines)
