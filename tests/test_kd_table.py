"""bench/kd_table.py: every row fine-tunes on the same fixed sample of training images."""
import json

from bench import kd_table
from tests.conftest import ROOT


def test_rows_train_on_one_sample_of_the_images(tiny_data, tmp_path):
    weights = str(ROOT / 'weights' / 'yolov3-mini.pt')
    kd_table.main(['--cfg', str(ROOT / 'cfg' / 'yolov3-mini.cfg'), '--weights', weights,
                   '--teacher', weights, '--data', str(tiny_data), '--epochs', '1',
                   '--img-size', '64', '--strategies', '1', '--seeds', '0', '1',
                   '--train-images', '8', '--project', str(tmp_path)])
    out = tmp_path / 'exp'
    result = json.loads((out / 'kd_table.json').read_text())
    assert [r['strategy'] for r in result['rows']] == [0, 1]
    assert all(len(r['map50_seeds']) == 2 for r in result['rows'])
    assert len((out / 'train_subset.txt').read_text().split()) == 8
    for run in ('kd0_s0', 'kd1_s1'):
        assert (out / run / 'results.csv').exists()
