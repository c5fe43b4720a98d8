import subprocess
import sys

import cv2
import numpy as np
import torch

from models import Darknet
from models.weights import save_checkpoint
from tests.conftest import ROOT, cfg_path
from utils.augment import letterbox
from utils.boxes import scale_boxes


def test_scale_boxes_undoes_letterbox():
    img = np.zeros((100, 250, 3), np.uint8)
    _, gain, pad = letterbox(img, 320)
    boxes = torch.tensor([[10.0, 20.0, 200.0, 90.0]])
    boxed = boxes * gain + torch.tensor([pad[0], pad[1], pad[0], pad[1]])
    back = scale_boxes(boxed.clone(), (320, 320), (100, 250), (gain, pad))
    assert torch.allclose(back, boxes, atol=1e-4)
    assert torch.allclose(scale_boxes(boxed.clone(), (320, 320), (100, 250)), boxes, atol=0.2)


def test_detect_images_and_video(tmp_path):
    torch.manual_seed(0)
    model = Darknet(cfg_path('yolov3-mini'))
    weights = tmp_path / 'm.pt'
    names = ['circle', 'square', 'triangle', 'star', 'cross', 'ring']
    save_checkpoint({'cfg': model.cfg_text, 'model': model.state_dict(), 'names': names}, weights)
    src = tmp_path / 'src'
    src.mkdir()
    rng = np.random.default_rng(0)
    for k in range(2):
        cv2.imwrite(str(src / f'img{k}.jpg'), rng.integers(0, 255, (120, 200, 3), np.uint8))
    video = cv2.VideoWriter(str(src / 'clip.mp4'), cv2.VideoWriter_fourcc(*'mp4v'), 5, (160, 96))
    for _ in range(3):
        video.write(rng.integers(0, 255, (96, 160, 3), np.uint8))
    video.release()
    cmd = [sys.executable, 'detect.py', '--weights', str(weights), '--source', str(src),
           '--img-size', '160', '--conf-thres', '0.2', '--save-txt', '--project',
           str(tmp_path / 'runs')]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = tmp_path / 'runs' / 'exp'
    assert sorted(p.name for p in out.glob('*') if p.is_file()) == ['clip.mp4', 'img0.jpg',
                                                                   'img1.jpg']
    labels = sorted(p.name for p in (out / 'labels').glob('*.txt'))
    assert labels == ['clip_0.txt', 'clip_1.txt', 'clip_2.txt', 'img0.txt', 'img1.txt']
    lines = (out / 'labels' / 'img0.txt').read_text().split('\n')
    fields = [line.split() for line in lines if line]
    assert fields and all(len(f) == 6 for f in fields)  # class cx cy w h confidence
    assert all(0 <= float(v) <= 1 for f in fields for v in f[1:])
    assert cv2.imread(str(out / 'img0.jpg')).shape == (120, 200, 3)  # drawn on the original
    r2 = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert r2.returncode == 0 and (tmp_path / 'runs' / 'exp2' / 'img0.jpg').exists()
    assert (out / 'labels' / 'img0.txt').read_text() == '\n'.join(lines)  # earlier run intact


def test_labels_stay_inside_the_image_and_contrast_with_their_colour():
    import numpy as np
    from utils.plots import class_color, draw_boxes, text_color
    img = np.full((100, 200, 3), 127, np.uint8)
    det = np.array([[150, 0, 199, 40, 0.9, 0], [0, 60, 30, 99, 0.5, 1]], np.float32)
    draw_boxes(img, det, ['a very long class name', 'b'])
    color = np.array(class_color(0), np.uint8)
    # the first label (about 160 px) would run past the right edge from x = 150: it is moved
    # left so that it ends inside the image, and down inside the box (no room above)
    assert (img[1:12, 60:140] == color).all(-1).mean() > 0.3
    assert (img[1:12, 190:199] == color).all(-1).any()
    assert text_color((0, 255, 255)) == (0, 0, 0) and text_color((80, 0, 0)) == (255, 255, 255)
