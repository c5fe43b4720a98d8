"""Every geometric transform moves boxes exactly with the pixels: draw, transform, measure back."""
import numpy as np
import pytest

from utils.augment import flip, letterbox, mosaic, random_affine, transform_boxes

COLORS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255)]


def drawn(h, w, boxes):
    img = np.zeros((h, w, 3), np.uint8)
    for cls, x1, y1, x2, y2 in boxes:
        img[int(y1):int(y2), int(x1):int(x2)] = COLORS[int(cls)]
    return img


def measured(img, k):
    """Tight box of the pixels close to color k."""
    dist = np.abs(img.astype(int) - np.array(COLORS[k])).sum(2)
    ys, xs = np.nonzero(dist < 100)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], float)


BOXES = np.array([[0, 10, 20, 60, 50], [1, 100, 30, 150, 110], [2, 40, 90, 70, 140]], float)


def assert_boxes_follow(img, boxes, tol=2.0):
    assert len(boxes) > 0
    for box in boxes:
        assert np.abs(measured(img, int(box[0])) - box[1:]).max() <= tol, box


def test_letterbox_maps_boxes():
    img = drawn(160, 200, BOXES)
    out, r, (left, top) = letterbox(img, (320, 320))
    assert out.shape == (320, 320, 3) and r == pytest.approx(1.6) and (left, top) == (0, 32)
    moved = BOXES.copy()
    moved[:, 1:] = moved[:, 1:] * r + [left, top, left, top]
    assert_boxes_follow(out, moved)


@pytest.mark.parametrize('horizontal', [True, False])
def test_flip_maps_boxes(horizontal):
    img = drawn(160, 200, BOXES)
    out, boxes = flip(img, BOXES, horizontal)
    assert_boxes_follow(out, boxes, tol=0)


@pytest.mark.parametrize('seed', range(4))
def test_random_affine_maps_boxes(seed):
    """Rotation, scale, shear and translation: a rotated rectangle's tight box is the box of its
    transformed corners, so the measured box must match."""
    img = drawn(160, 200, BOXES)
    rng = np.random.default_rng(seed)
    out, boxes = random_affine(img, BOXES, (180, 220), degrees=30, translate=0.1, scale=0.3,
                               shear=0, rng=rng)
    assert_boxes_follow(out, boxes, tol=2.5)
    assert all(b[0] in BOXES[:, 0] for b in boxes)


def test_affine_shear_moves_corners_like_pixels():
    rng = np.random.default_rng(7)
    img = drawn(160, 200, BOXES[:1])
    out, boxes = random_affine(img, BOXES[:1], None, degrees=0, translate=0, scale=0, shear=10,
                               rng=rng)
    assert_boxes_follow(out, boxes, tol=2.0)


def test_transform_boxes_identity():
    assert np.allclose(transform_boxes(BOXES, np.eye(3)), BOXES)


def test_mosaic_maps_boxes_and_clips():
    rng = np.random.default_rng(3)
    imgs, boxes = [], []
    for k in range(4):
        b = np.array([[k, 20 + 10 * k, 20, 120, 90 + 10 * k]], float)
        imgs.append(drawn(160, 160, b))
        boxes.append(b)
    canvas, merged, _ = mosaic(imgs, boxes, 160, rng)
    assert canvas.shape == (320, 320, 3)
    assert_boxes_follow(canvas, merged, tol=0)
    assert ((merged[:, 1:] >= 0) & (merged[:, 1:] <= 320)).all()
