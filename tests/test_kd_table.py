"""bench/experiments/kd_table.py: every row fine-tunes on the same fixed sample of training
images."""
import json
from pathlib import Path

import yaml

from bench.experiments import kd_table
from tests.conftest import ROOT


def test_rows_train_on_one_sample_of_the_images(tiny_data, tmp_path):
    weights = str(ROOT / 'weights' / 'yolov3-mini.pt')
    kd_table.main(['--cfg', str(ROOT / 'cfg' / 'yolov3-mini.cfg'), '--weights', weights,
                   '--teacher', weights, '--data', str(tiny_data), '--epochs', '1',
                   '--img-size', '64', '--strategies', '--seeds', '0', '1',
                   '--train-images', '8', '--project', str(tmp_path)])
    out = tmp_path / 'exp'
    result = json.loads((out / 'kd_table.json').read_text())
    assert [r['strategy'] for r in result['rows']] == [0]  # the KD rows: tests/test_distill.py
    assert len(result['rows'][0]['map50_seeds']) == 2
    assert len((out / 'train_subset.txt').read_text().split()) == 8
    for run in ('kd0_s0', 'kd0_s1'):
        data = yaml.safe_load((out / run / 'opt.yaml').read_text())['data']
        assert Path(data).resolve() == (out / 'bench.data').resolve()


def test_a_named_table_reads_back_finished_fine_tunes(tiny_data, tmp_path, monkeypatch):
    weights = str(ROOT / 'weights' / 'yolov3-mini.pt')
    args = ['--cfg', str(ROOT / 'cfg' / 'yolov3-mini.cfg'), '--weights', weights,
            '--teacher', weights, '--data', str(tiny_data), '--epochs', '1', '--img-size', '64',
            '--strategies', '--seeds', '0', '1', '--train-images', '8',
            '--project', str(tmp_path), '--name', 'table']
    done = tmp_path / 'table' / 'kd0_s0' / 'result.json'
    done.parent.mkdir(parents=True)
    done.write_text(json.dumps({'map50': 0.25, 'map50_95': 0.125, 'seconds': 3.0}))
    trained = []
    real_run = kd_table.train.run
    monkeypatch.setattr(kd_table.train, 'run', lambda **kw: trained.append(kw['name'])
                        or real_run(**kw))
    kd_table.main(args)
    assert trained == ['kd0_s1']  # seed 0 was finished: read back, not trained again
    row = json.loads((tmp_path / 'table' / 'kd_table.json').read_text())['rows'][0]
    assert row['map50_seeds'][0] == 0.25
    assert json.loads((tmp_path / 'table' / 'kd0_s1' / 'result.json').read_text())['seconds'] > 0
    kd_table.main(args)  # everything finished: nothing trains
    assert trained == ['kd0_s1']
