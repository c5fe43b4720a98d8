"""Inference sources for detect.py: an image, a folder, a glob, a video file or a webcam index."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from utils.augment import letterbox
from utils.datasets import IMG_SUFFIXES, DataError, read_image, thin_image_problem
from utils.files import glob_files
from utils.log import LOGGER

VIDEO_SUFFIXES = ('.mp4', '.avi', '.mov', '.mkv', '.m4v', '.mpg', '.mpeg', '.wmv', '.webm')


@dataclass
class Frame:
    path: str          # file the frame came from ('webcam0' for a camera)
    index: int         # frame number within a video (0 for images)
    image: np.ndarray  # original BGR frame
    input: np.ndarray  # letterboxed RGB CHW uint8, what the model sees
    ratio_pad: tuple   # (gain, (pad_x, pad_y)) to map boxes back to the original
    is_video: bool
    fps: float = 30.0


def _files(source: str) -> list[Path]:
    p = Path(source)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix.lower() in IMG_SUFFIXES + VIDEO_SUFFIXES)
    elif p.is_file():
        files = [p]
    else:
        files = glob_files(source)
        files = [f for f in files if f.suffix.lower() in IMG_SUFFIXES + VIDEO_SUFFIXES]
    if not files:
        raise DataError(f'--source {source}: no images or videos found')
    return files


def prepare(img, img_size):
    """A BGR image letterboxed to img_size as the network input: RGB, (3, h, w) uint8; also
    (gain, pad) to map boxes back."""
    boxed, gain, pad = letterbox(img, img_size, auto=False)
    return np.ascontiguousarray(boxed[:, :, ::-1].transpose(2, 0, 1)), (gain, pad)


def _video_frames(cap, path, img_size):
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    index = 0
    while True:
        ok, img = cap.read()
        if not ok:
            break
        x, ratio_pad = prepare(img, img_size)
        yield Frame(path, index, img, x, ratio_pad, True, fps)
        index += 1
    cap.release()


def iter_frames(source: str, img_size: int):
    """Yield Frames from every image and video of the source, in order."""
    if source.isnumeric():  # webcam
        cap = cv2.VideoCapture(int(source))
        if not cap.isOpened():
            raise DataError(f'--source {source}: cannot open webcam {source}')
        yield from _video_frames(cap, f'webcam{source}', img_size)
        return
    files = list(_files(source))
    for f in files:
        if f.suffix.lower() in VIDEO_SUFFIXES:
            cap = cv2.VideoCapture(str(f))
            if not cap.isOpened():
                raise DataError(f'{f}: cannot open video')
            yield from _video_frames(cap, str(f), img_size)
            continue
        img = read_image(f)
        problem = image_problem(img)
        if problem and len(files) == 1:
            raise DataError(f'{f}: {problem}')
        if problem:  # one bad file in a folder: the others still run
            LOGGER.warning(f'WARNING: skipped {f}: {problem}')
            continue
        x, ratio_pad = prepare(img, img_size)
        yield Frame(str(f), 0, img, x, ratio_pad, False)


def image_problem(img):
    """Why a decoded image (or None) cannot be letterboxed, or None."""
    if img is None:
        return 'cannot be read as an image'
    return thin_image_problem(*img.shape[:2])
