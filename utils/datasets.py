"""Datasets in the darknet/YOLO layout for training and evaluation: YoloDataset (letterbox or
darknet's stretch, mosaic and the other augmentations, masks alongside) and its loader.

- `.data` files: utils/data_cfg.py. Their items (images, YOLO labels ``class cx cy w h`` per line,
  normalized, in ``.../labels/x.txt`` for ``.../images/x.jpg``, masks in ``.../masks/x.png`` or
  lightNet's ``x-label.png``, 255 = not scored): utils/items.py, where each is checked once and
  cached. A corrupt image, a malformed line, a class out of range, a box outside the image, or
  a mask that is missing, unreadable, of another size or with a class out of range skips that
  image with one warning naming the file (and line); the run goes on.
- The names other modules use are importable from here too.
"""
from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import torch

from utils.augment import (affine_matrix, augment_hsv, flip, flip_mask, letterbox,
                           letterbox_mask, mosaic, warp, warp_mask)
from utils.boxes import xywh2xyxy, xyxy2xywh
from utils.data_cfg import DataError, load_names, parse_data_cfg
from utils.items import (IMG_SUFFIXES, image_files, label_path, load_image, load_items, load_mask,
                         mask_path, read_image, read_mask, thin_image_problem)
from utils.log import LOGGER

__all__ = ['IMG_SUFFIXES', 'DataError', 'YoloDataset', 'available_memory', 'cache_bytes',
           'create_dataloader', 'default_workers', 'fits_in_ram', 'image_files', 'label_path',
           'load_image', 'load_items', 'load_names', 'parse_data_cfg', 'read_image', 'read_mask',
           'thin_image_problem']

DEFAULT_HYP = {'hsv_h': 0.015, 'hsv_s': 0.7, 'hsv_v': 0.4, 'degrees': 0.0, 'translate': 0.1,
               'scale': 0.5, 'shear': 0.0, 'flipud': 0.0, 'fliplr': 0.5, 'mosaic': 1.0}


def cache_bytes(source, nc, img_size):
    """RAM that --cache-images takes for a source: its images resized as load_image does."""
    shapes = np.array([it[1] for it in load_items(source, nc)[0]], np.float64)
    r = img_size / shapes.max(1)
    return int((np.round(shapes[:, 0] * r) * np.round(shapes[:, 1] * r) * 3).sum())


def available_memory():
    """Bytes the kernel says a new allocation can take (MemAvailable), or None if unknown."""
    try:
        for line in Path('/proc/meminfo').read_text().splitlines():
            if line.startswith('MemAvailable:'):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def default_workers(cuda, world=1):
    """Loader processes per rank: on a GPU nearly every core this rank has (the step runs on the
    device), capped; on a CPU a quarter of them, since the step's threads want the rest
    (docs/results/training-speed.md)."""
    per_rank = max(1, len(os.sched_getaffinity(0)) // world)
    return max(1, min(per_rank - 1, 12)) if cuda else max(1, per_rank // 4)


def fits_in_ram(source, nc, img_size, share=0.25):
    """Whether a source's decoded images take under ``share`` of the free memory: then a CPU
    epoch decodes no JPEG beside the model's threads (docs/results/compress.md)."""
    free = available_memory()
    return free is not None and cache_bytes(source, nc, img_size) < free * share


class YoloDataset(torch.utils.data.Dataset):
    """Items: (image uint8 tensor (3, H, W) RGB, labels (n, 6) = [0, class, cx, cy, w, h]
    normalized to the returned image, path, (original (h, w), (ratio, (pad_x, pad_y))), mask
    uint8 tensor (H, W) of class indices (IGNORE where nothing is scored), or None without
    ``seg_nc``)."""

    def __init__(self, source, nc, img_size=320, batch_size=16, augment=False, hyp=None,
                 rect=False, stride=32, cache_images=False, prefix='', seed=None, seg_nc=0,
                 stretch=False):
        self.img_size, self.augment, self.rect, self.stride = img_size, augment, rect, stride
        # stretch: each image resized to the square input whatever its aspect (darknet's resize
        # unless the cfg says letter_box=1); evaluation only
        self.stretch = stretch and not augment
        self.seed, self.draws = seed, 0  # seed: reproducible augmentation (tests, debugging)
        self.seg_nc = seg_nc
        self.hyp = {**DEFAULT_HYP, **(hyp or {})}
        items, self.summary = load_items(source, nc, prefix, seg_nc)
        self.files = [Path(it[0]) for it in items]
        self.shapes = np.array([it[1] for it in items], np.float64)  # (h, w)
        self.labels = [np.array(it[2], np.float32).reshape(-1, 5) for it in items]
        self.batch_shapes = self._rect_shapes(batch_size) if rect else None
        self.images = [None] * len(self.files)
        if cache_images:  # threads: cv2 decodes without the GIL
            with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
                self.images = list(pool.map(lambda f: load_image(f, img_size), self.files))
            if prefix:
                size = sum(im[0].nbytes for im in self.images) / 1e9
                LOGGER.info(f'{prefix}{len(self.images)} decoded images held in RAM ({size:.2f} '
                            'GB)')

    def _rect_shapes(self, batch_size):
        """Sort by aspect ratio; each batch gets the smallest stride-multiple shape that fits."""
        aspect = self.shapes[:, 0] / self.shapes[:, 1]
        order = aspect.argsort()
        self.files = [self.files[i] for i in order]
        self.labels = [self.labels[i] for i in order]
        self.shapes, aspect = self.shapes[order], aspect[order]
        n_batches = math.ceil(len(order) / batch_size)
        shapes = []
        for b in range(n_batches):
            a = aspect[b * batch_size:(b + 1) * batch_size]
            hw = [1.0, 1.0]
            if a.max() < 1:
                hw = [a.max(), 1.0]
            elif a.min() > 1:
                hw = [1.0, 1 / a.min()]
            shapes.append(np.ceil(np.array(hw) * self.img_size / self.stride) * self.stride)
        return [tuple(int(v) for v in shapes[i // batch_size]) for i in range(len(order))]

    def __len__(self):
        return len(self.files)

    def _load(self, i):
        return self.images[i] if self.images[i] is not None else load_image(self.files[i],
                                                                            self.img_size)

    def _load_mask(self, i, shape_hw):
        return load_mask(mask_path(self.files[i]), shape_hw) if self.seg_nc else None

    def _pixel_boxes(self, i, img_shape, ratio=1.0, pad=(0, 0)):
        """Labels of item i as (n, 5) class, x1, y1, x2, y2 in pixels of a resized image."""
        labels = self.labels[i]
        boxes = labels.copy()
        if len(labels):
            h, w = img_shape[:2]
            xyxy = xywh2xyxy(labels[:, 1:]) * np.array([w, h, w, h]) * ratio
            boxes[:, 1:] = xyxy + np.array([pad[0], pad[1], pad[0], pad[1]])
        return boxes

    def _affine(self, img, boxes, mask, shape_out, rng):
        """The random affine of the hyp, the same matrix on image, boxes and mask."""
        h = self.hyp
        shape_out = shape_out or img.shape[:2]
        m = affine_matrix(img.shape[:2], shape_out, h['degrees'], h['translate'], h['scale'],
                          h['shear'], rng)
        img, boxes = warp(img, boxes, m, shape_out)
        return img, boxes, None if mask is None else warp_mask(mask, m, shape_out)

    def _mosaic(self, i, rng):
        idx = [i] + list(rng.integers(0, len(self), 3))
        images, boxes, masks = [], [], []
        for k in idx:
            img, _ = self._load(k)
            images.append(img)
            boxes.append(self._pixel_boxes(k, img.shape))
            masks.append(self._load_mask(k, img.shape[:2]))
        canvas, merged, mask = mosaic(images, boxes, self.img_size, rng,
                                      masks if self.seg_nc else None)
        return self._affine(canvas, merged, mask, (self.img_size, self.img_size), rng)

    def _stretched(self, i):
        """The original image resized to the square input (bilinear, as OpenCV's darknet reader
        does), its boxes and mask with it; the ratio per axis."""
        img = read_image(self.files[i])
        if img is None:
            raise DataError(f'{self.files[i]}: cannot be read as an image')
        (h0, w0), size = img.shape[:2], self.img_size
        mask = self._load_mask(i, (h0, w0))
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_LINEAR)
        if mask is not None:
            mask = cv2.resize(mask, (size, size), interpolation=cv2.INTER_NEAREST)
        return img, self._pixel_boxes(i, (size, size)), mask, (size / w0, size / h0)

    def __getitem__(self, i):
        self.draws += 1
        rng = np.random.default_rng(None if self.seed is None else [self.seed, i, self.draws])
        (h0, w0) = (int(self.shapes[i][0]), int(self.shapes[i][1]))
        ratio, pad = 1.0, (0, 0)
        if self.augment and not self.rect and rng.random() < self.hyp['mosaic']:
            img, boxes, mask = self._mosaic(i, rng)
        elif self.stretch:
            img, boxes, mask, ratio = self._stretched(i)
        else:
            img, _ = self._load(i)
            mask = self._load_mask(i, img.shape[:2])
            shape = self.batch_shapes[i] if self.rect else self.img_size
            resized_hw = img.shape[:2]
            img, ratio, pad = letterbox(img, shape, auto=False, scaleup=self.augment)
            if mask is not None:
                mask = letterbox_mask(mask, ratio, pad, img.shape[:2])
            boxes = self._pixel_boxes(i, resized_hw, ratio, pad)
            ratio = ratio * resized_hw[0] / h0  # from the original image, for scale_boxes
            if self.augment:
                img, boxes, mask = self._affine(img, boxes, mask, None, rng)
        if self.augment:
            augment_hsv(img, self.hyp['hsv_h'], self.hyp['hsv_s'], self.hyp['hsv_v'], rng)
            for horizontal, key in ((True, 'fliplr'), (False, 'flipud')):
                if rng.random() < self.hyp[key]:
                    img, boxes = flip(img, boxes, horizontal)
                    mask = None if mask is None else flip_mask(mask, horizontal)
        h, w = img.shape[:2]
        labels = torch.zeros((len(boxes), 6))
        if len(boxes):
            labels[:, 1] = torch.from_numpy(boxes[:, 0])
            xywh = xyxy2xywh(boxes[:, 1:]) / np.array([w, h, w, h])
            labels[:, 2:] = torch.from_numpy(xywh.astype(np.float32))
        img = np.ascontiguousarray(img[:, :, ::-1].transpose(2, 0, 1))  # BGR HWC -> RGB CHW
        mask = None if mask is None else torch.from_numpy(np.ascontiguousarray(mask))
        return torch.from_numpy(img), labels, str(self.files[i]), ((h0, w0), (ratio, pad)), mask

    @staticmethod
    def collate_fn(batch):
        imgs, labels, paths, shapes, masks = zip(*batch)
        for k, lab in enumerate(labels):
            lab[:, 0] = k  # image index within the batch
        masks = torch.stack(masks) if masks[0] is not None else None
        return torch.stack(imgs), torch.cat(labels, 0), list(paths), list(shapes), masks


def _worker_init(worker_id):
    cv2.setNumThreads(0)  # the loader already runs one process per worker
    os.nice(10)  # where cores are few, the step's threads come first; idle cores are the same


def create_dataloader(source, nc, img_size=320, batch_size=16, augment=False, hyp=None,
                      rect=False, stride=32, workers=2, shuffle=False, cache_images=False,
                      prefix='', distributed=False, seed=0, seg_nc=0, pin_memory=False,
                      stretch=False):
    """A DataLoader over a YoloDataset; with distributed=True each process gets its share;
    workers=None: default_workers for this machine."""
    dataset = YoloDataset(source, nc, img_size, batch_size, augment, hyp, rect, stride,
                          cache_images, prefix, seg_nc=seg_nc, stretch=stretch)
    sampler = None
    if distributed:
        sampler = torch.utils.data.distributed.DistributedSampler(
            dataset, shuffle=shuffle and not rect, seed=seed)
    if workers is None:
        workers = default_workers(torch.cuda.is_available())
    workers = min(workers, os.cpu_count() or 1, batch_size)
    shuffle = shuffle and sampler is None and not rect
    # seeded here, not by the global RNG: PTQ calibrated on another sample every run
    order = torch.Generator().manual_seed(seed) if shuffle else None
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, generator=order,
        sampler=sampler, num_workers=workers, collate_fn=YoloDataset.collate_fn,
        worker_init_fn=_worker_init, persistent_workers=workers > 0, pin_memory=pin_memory,
        prefetch_factor=4 if workers > 0 else None)
    return loader, dataset
