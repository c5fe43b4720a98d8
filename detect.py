r"""Run a detector (or a network that segments) on images, folders, globs, videos or a webcam and
draw what it finds: the segmentation blended in its cfg's colours, boxes on top.

    python3 detect.py --weights weights/yolov3-mini.pt --source data/shapes/images/val
    python3 detect.py --data data/coco2017.data --cfg cfg/yolov3-tiny.cfg \
        --weights yolov3-tiny.weights --source clip.mp4

Drawings go to runs/detect/exp*/ (a new folder each run; nothing earlier is touched); --save-txt
adds labels/<name>.txt per image or video frame: ``class cx cy w h confidence``, normalized to the
original image; --save-masks adds masks/<name>.png, the class index of every pixel.
"""
from __future__ import annotations

import dataclasses
import os
from collections import Counter
from pathlib import Path

import cv2
import torch

from models.weights import load_checkpoint
from quantize.loader import autocast_dtype, load_for_inference
from utils.boxes import scale_boxes, xyxy2xywh
from utils.cli import friendly_errors
from utils.datasets import DataError, load_names, parse_data_cfg
from utils.log import LOGGER
from utils.errors import OptionError
from utils.nms import non_max_suppression
from utils.options import Options, Parser, at_least, field, one_size, unit_float
from utils.files import atomic_write_text, write_image
from utils.plots import draw_boxes, draw_mask, palette
from utils.runs import increment_path
from utils.sources import iter_frames
from utils.torch_utils import autocast, select_device, time_sync


@dataclasses.dataclass
class DetectOptions(Options):
    """Everything a detect run is told; detect.run(**kw) and the command line build it."""
    source: str = field('data/shapes/images/val', 'image, folder, glob, video file or webcam '
                        'index')
    weights: str | None = field(None, 'none with --cfg: random initial weights', shared=True)
    cfg: str | None = field(None, shared=True)
    data: str | None = field(None, 'its names= file names the classes', shared=True)
    names: str | None = field(None, '.names file (default: the --data names, else those in the '
                              'checkpoint)')
    img_size: int | list | tuple | None = field(None, shared=True)
    conf_thres: float = field(0.25, '', type=unit_float)
    iou_thres: float = field(0.45, '', type=unit_float)
    classes: list | None = field(None, 'keep only these', type=at_least(0), nargs='+')
    agnostic_nms: bool = field(False, 'NMS across classes', action='store_true')
    max_det: int = field(300, '', type=at_least(1))
    save_txt: bool = field(False, 'write labels with confidences', action='store_true')
    save_masks: bool = field(False, 'segmenting networks: write each class map as '
                             'masks/<name>.png', action='store_true')
    view_img: bool = field(False, 'show results in a window', action='store_true')
    device: str = field('', shared=True)
    project: str = field('runs/detect', shared=True)
    name: str = field('exp', shared=True)
    exist_ok: bool = field(False, shared=True)
    amp: bool | None = field(None, shared=True)


def resolve_names(names_file, weights, nc, data=None):
    """Class names: --names, else the --data file's, else those stored in a .pt checkpoint, else
    the indices. Names the user gives must be as many as the model's classes."""
    given = names_file or data
    if names_file:
        names = load_names(names_file)
    elif data:
        names = parse_data_cfg(data, generate=False)['names']
    elif str(weights).endswith('.pt'):
        names = load_checkpoint(weights).get('names') or []
    else:
        names = []
    if names and len(names) != nc:
        if given:
            flag = '--names' if names_file else '--data'
            raise DataError(f'{given} ({flag}): {len(names)} names for a {nc}-class model')
        LOGGER.warning(f'WARNING: {weights} stores {len(names)} names for a {nc}-class model; '
                       'using indices')
        names = []
    return names or [str(i) for i in range(nc)]


def head_option(model, key):
    """A key of the network's segmentation head block ([softmax] colormap=, names=), or None."""
    blocks = getattr(model, 'blocks', None)
    if not blocks or not model.seg_layers:
        return None
    block = blocks[model.seg_layers[0] + 1]
    return block.get(key) if key in block.options else None


def original_mask(mask, frame):
    """A class map of the letterboxed input, its padding cut off, resized (nearest) to the
    frame's original image."""
    gain, (left, top) = frame.ratio_pad
    h0, w0 = frame.image.shape[:2]
    h1, w1 = max(1, round(h0 * gain)), max(1, round(w0 * gain))
    inner = mask[int(top):int(top) + h1, int(left):int(left) + w1].to(torch.uint8).cpu().numpy()
    return cv2.resize(inner, (w0, h0), interpolation=cv2.INTER_NEAREST)


def label_lines(det, shape):
    """YOLO-format lines with confidence, normalized to an image of shape (h, w)."""
    h, w = shape[:2]
    xywh = xyxy2xywh(det[:, :4]) / torch.tensor([w, h, w, h])
    return [f'{int(c)} {x:.6f} {y:.6f} {bw:.6f} {bh:.6f} {conf:.5f}'
            for (x, y, bw, bh), conf, c in zip(xywh.tolist(), det[:, 4].tolist(),
                                               det[:, 5].tolist())]


class Outputs:
    """Writes drawings (images, or videos frame by frame) and label files into the run folder."""

    def __init__(self, save_dir, save_txt, save_masks=False):
        self.save_dir, self.save_txt, self.writers = Path(save_dir), save_txt, {}
        self.save_masks, self.videos = save_masks, []
        for kind, on in (('labels', save_txt), ('masks', save_masks)):
            if on:
                (self.save_dir / kind).mkdir(parents=True, exist_ok=True)

    def write(self, frame, drawn, det, mask=None):
        stem = Path(frame.path).stem
        if frame.is_video:
            writer = self.writers.get(frame.path)
            if writer is None:
                h, w = drawn.shape[:2]
                out = self.save_dir / f'{stem}.mp4'
                partial = out.with_name(f'.{stem}.partial.mp4')  # renamed when the video ends
                writer = cv2.VideoWriter(str(partial), cv2.VideoWriter_fourcc(*'mp4v'),
                                         frame.fps, (w, h))
                self.writers[frame.path] = writer
                self.videos.append((partial, out))
            writer.write(drawn)
            stem = f'{stem}_{frame.index}'
        else:
            write_image(self.save_dir / Path(frame.path).name, drawn)
        if self.save_masks and mask is not None:
            write_image(self.save_dir / 'masks' / f'{stem}.png', mask)
        if self.save_txt:
            lines = label_lines(det, frame.image.shape)
            atomic_write_text(self.save_dir / 'labels' / f'{stem}.txt',
                              ''.join(f'{x}\n' for x in lines))

    def close(self):
        for w in self.writers.values():
            w.release()
        for partial, out in self.videos:
            os.replace(partial, out)


def show(window, img, state):
    """cv2.imshow where a GUI exists; a single warning where it does not (headless OpenCV)."""
    if state.get('no_gui'):
        return
    try:
        cv2.imshow(window, img)
        cv2.waitKey(1)
    except cv2.error:
        state['no_gui'] = True
        LOGGER.warning('WARNING: --view-img needs OpenCV with GUI support (opencv-python); '
                       'skipping the window')


@torch.no_grad()
def run(**kw):
    """Detect (and segment) every frame of --source; returns the run folder and the counts
    per class."""
    opt = DetectOptions.from_kwargs(**kw).validate()
    weights, classes = opt.weights, opt.classes
    device = select_device(opt.device)
    model = load_for_inference(weights, opt.cfg, device)
    amp_dtype = autocast_dtype(model, device, opt.amp, weights)
    size = one_size(opt.img_size, (model.img_size or (None, None))[1])
    if size is None:
        raise OptionError(f'{weights}: a dynamic graph takes any size: give --img-size')
    names = resolve_names(opt.names, weights, model.nc, opt.data) if model.nc else []
    if classes and max(classes) >= model.nc:
        raise OptionError(f'--classes {max(classes)}: the model detects classes 0 to '
                          f'{model.nc - 1}')
    colors = palette(model.seg_nc, head_option(model, 'colormap')) if model.seg_nc else None
    save_dir = increment_path(opt.project, opt.name, opt.exist_ok)
    outputs, gui = Outputs(save_dir, opt.save_txt, opt.save_masks), {}
    counts = Counter()
    try:
        for frame in iter_frames(str(opt.source), size):
            t0 = time_sync()
            x = torch.from_numpy(frame.input).to(device).float().div(255).unsqueeze(0)
            with autocast(device, amp_dtype):
                decoded, heads = model(x)
            det = torch.zeros((0, 6))
            if decoded is not None:
                det = non_max_suppression(decoded.float(), opt.conf_thres, opt.iou_thres, classes,
                                          opt.agnostic_nms, opt.max_det, multi_label=False)[0].cpu()
                det[:, :4] = scale_boxes(det[:, :4], x.shape[2:], frame.image.shape[:2],
                                         frame.ratio_pad)
            mask = (original_mask(model.segment_classes(heads, x.shape[2:])[0], frame)
                    if model.seg_nc else None)
            ms = 1000 * (time_sync() - t0)
            found = Counter(names[int(c)] for c in det[:, 5].tolist())
            counts.update(found)
            summary = ', '.join(f'{n} {k}' for k, n in found.items()) or 'nothing'
            where = f'{frame.path}' + (f' frame {frame.index}' if frame.is_video else '')
            LOGGER.info(f'{where}: {summary} ({ms:.1f} ms)')
            drawn = frame.image.copy()
            if mask is not None:
                draw_mask(drawn, mask, colors)
            drawn = draw_boxes(drawn, det, names)
            outputs.write(frame, drawn, det, mask)
            if opt.view_img:
                show(str(frame.path), drawn, gui)
    finally:
        outputs.close()
    LOGGER.info(f'Results saved to {save_dir}')
    return save_dir, counts


def parser():
    return DetectOptions.add_fields(Parser(prog='detect.py', description=__doc__))


def parse_opt(argv=None):
    return parser().parse_args(argv)


@friendly_errors
def main(argv=None):
    run(**vars(parse_opt(argv)))


if __name__ == '__main__':
    main()
