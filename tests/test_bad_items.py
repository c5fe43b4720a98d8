"""Bad items inside otherwise good input (a label line, an image of a folder): warned, named,
counted and skipped; the run goes on."""
import re
from pathlib import Path

import numpy as np

from tests.conftest import ROOT

def test_bad_items_in_a_dataset_are_warned_counted_and_skipped(tiny_data, tmp_path, capsys,
                                                                monkeypatch):
    """Per-item problems (label lines with inf or NaN, a label path that is a folder, an image
    too thin to resize) skip their image with a warning naming it; the run goes on."""
    import shutil

    import cv2

    root = tmp_path / 'shapes'
    shutil.copytree(tiny_data.parent / 'shapes', root,
                    ignore=shutil.ignore_patterns('*.cache'))
    labels = sorted((root / 'labels' / 'val').glob('*.txt'))
    labels[0].write_text('inf 0.5 0.5 0.2 0.2\n')
    labels[1].write_text('1 nan 0.5 0.2 0.2\n')
    labels[2].unlink()
    labels[2].mkdir()
    thin = root / 'images' / 'val' / 'thin.jpg'
    cv2.imwrite(str(thin), np.zeros((1, 2000, 3), np.uint8))
    images = (root / 'val.txt').read_text().splitlines()
    (root / 'val.txt').write_text('\n'.join(str(root / 'images' / 'val' / Path(p).name)
                                            for p in images) + f'\n{thin}\n')
    data = tmp_path / 'd.data'
    data.write_text(f'classes=6\ntrain={root}/val.txt\nvalid={root}/val.txt\n'
                    f"names={ROOT / 'data' / 'shapes.names'}\n")
    import test as evaluation
    monkeypatch.chdir(ROOT)
    metrics = evaluation.run(data=str(data), weights=None, cfg=str(ROOT / 'cfg/yolov3-mini.cfg'),
                             img_size=128, project=str(tmp_path / 'runs'), plots=False,
                             verbose=False, workers=0)
    err = capsys.readouterr().err
    for bad in (labels[0].name, labels[1].name, labels[2].name, 'thin.jpg'):
        assert re.search(rf'skipped .*{bad}', err), (bad, err)
    assert re.search(r'4 skipped', err) and metrics['images'] == len(images) - 3


def test_detect_skips_the_bad_images_of_a_folder_and_runs_the_rest(tmp_path, capsys,
                                                                   monkeypatch):
    import cv2

    import detect
    folder = tmp_path / 'images'
    folder.mkdir()
    (folder / 'junk.jpg').write_text('not an image')
    cv2.imwrite(str(folder / 'thin.jpg'), np.zeros((1, 2000, 3), np.uint8))
    cv2.imwrite(str(folder / 'ok.jpg'), np.full((100, 120, 3), 127, np.uint8))
    monkeypatch.chdir(ROOT)
    detect.main(['--cfg', 'cfg/yolov3-mini.cfg', '--source', str(folder), '--project',
                 str(tmp_path / 'runs'), '--img-size', '128'])
    err = capsys.readouterr().err
    assert re.search(r'skipped .*junk\.jpg: cannot be read', err)
    assert re.search(r'skipped .*thin\.jpg: .*too thin', err)
    assert (tmp_path / 'runs' / 'exp' / 'ok.jpg').is_file()
