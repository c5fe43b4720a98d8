r"""Training throughput: images/s and peak memory of one training step (forward, loss, backward,
optimizer) for a cfg, input size and batch, in fp32 and with --amp.

    python3 -m bench.speed.train_speed --cfg cfg/yolov3-tiny.cfg --img-size 320 --batch-size 16
    python3 -m bench.speed.train_speed --cfg cfg/yolov3.cfg --img-size 416 --device 0   # on a GPU

Inputs are random images with random boxes, so the figure is the model's compute (the data
pipeline runs in separate worker processes during training). Each measurement runs in its own
process; peak memory is max RSS on CPU, max allocated on CUDA. Prints a table, writes JSON.

    python3 -m bench.speed.train_speed --end-to-end                     # where this machine limits
    python3 -m bench.speed.train_speed --end-to-end --cfg cfg/yolov3.cfg --img-size 416 \
        --batch-size 32 --amp --device 0

--end-to-end builds train.py's own Trainer on the training split of --data (mosaic and all, at
train.py's defaults unless --workers is given) and times three things in turns: the loader
alone, train.py's step alone on one batch already loaded, and the two together as train.py runs
them; it says which one limits.

Feeds docs/results/training-speed.md.
"""
from __future__ import annotations

import argparse
import multiprocessing
import resource
import time
from pathlib import Path

import torch


from terminaltables import AsciiTable

from bench.provenance import write_result
from models import Darknet
from models.cfg import load_blocks, save_cfg, with_classes
from utils.datasets import parse_data_cfg
from utils.hyp import load_hyp
from utils.loss import YoloLoss, scaled_gains
from utils.optim import optimizer_step
from utils.torch_utils import amp_settings, autocast, select_device


def random_targets(batch, nc, n_per_image=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    n = batch * n_per_image
    xy = torch.rand(n, 2, generator=g) * 0.8 + 0.1
    wh = torch.rand(n, 2, generator=g) * 0.3 + 0.02
    img = torch.arange(batch).repeat_interleave(n_per_image).float()[:, None]
    cls = torch.randint(0, nc, (n, 1), generator=g).float()
    return torch.cat((img, cls, xy, wh), 1)


def measure(cfg, img_size, batch, device, amp, steps=10, warmup=3):
    torch.manual_seed(0)
    model = Darknet(cfg).to(device).to(memory_format=torch.channels_last).train()
    hyp = scaled_gains(load_hyp({}), len(model.yolo_layers), model.nc, img_size)
    criterion = YoloLoss(model, hyp)
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9, nesterov=True)
    dtype, use_scaler = amp_settings(device, amp)
    scaler = torch.amp.GradScaler('cuda') if use_scaler else None
    imgs = torch.rand(batch, 3, img_size, img_size, device=device)
    imgs = imgs.contiguous(memory_format=torch.channels_last)
    targets = random_targets(batch, model.nc).to(device)
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        with autocast(device, dtype):
            loss, _ = criterion(model(imgs), targets, imgs.shape[2:])
        (scaler.scale(loss) if scaler else loss).backward()
        # the step train.py takes
        optimizer_step(model, opt, scaler, hooks=[], epoch=0, clip_grad=hyp['clip_grad'])
        if device.type == 'cuda':
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    times.sort()
    peak = (torch.cuda.max_memory_allocated(device) if device.type == 'cuda'
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return {'cfg': str(cfg), 'img_size': img_size, 'batch': batch, 'device': str(device),
            'precision': str(dtype).replace('torch.', '') if dtype else 'fp32',
            'img_per_s': round(batch / times[len(times) // 2], 1),
            'peak_mem_mb': round(peak / 2 ** 20)}


def timed_batches(batches, steps, warmup, work):
    """Images per second of ``work(batch)`` over ``steps`` batches after ``warmup``."""
    n, t0 = 0, None
    for i, batch in enumerate(batches):
        if i == warmup:
            t0, n = time.perf_counter(), 0
        work(batch)
        n += batch[0].shape[0]
        if i + 1 == warmup + steps:
            break
    return n / (time.perf_counter() - t0)


def for_classes(cfg, data):
    """cfg as is when it detects the dataset's classes, else a copy that does (the cfgs of
    COCO models on the built-in dataset)."""
    nc = parse_data_cfg(data)['classes']
    blocks = load_blocks(cfg)
    if all(b.get('classes') == nc for b in blocks if b.type == 'yolo'):
        return cfg
    out = Path('runs/bench') / f'{Path(cfg).stem}-{nc}classes.cfg'
    save_cfg(with_classes(blocks, nc), out)
    return str(out)


def end_to_end(cfg, data, img_size, batch, device, given, steps, warmup=3):
    """Loader alone, step alone, both together: img/s of each through train.py's Trainer
    (``given``: the train.py options set, the others at their defaults)."""
    import train  # the bench builds the real training run
    opt = train.resolved(train.TrainOptions.from_kwargs(
        cfg=for_classes(cfg, data), data=data, img_size=[img_size], batch_size=batch,
        device=device, epochs=1, notest=True, nosave=True, project='runs/bench',
        name='train_speed', **given))
    trainer = train.Trainer(opt, None, None, 0, 1, -1)
    trainer.model.train()
    first = next(iter(trainer.train_loader))
    ni = iter(range(trainer.n_warmup, 10 ** 9))  # past the lr warmup, as most steps are

    def step(b):
        trainer.train_step(0, next(ni), b[0], b[1], b[4])

    def batches():
        while True:
            yield from trainer.train_loader

    loader = timed_batches(batches(), steps, warmup, lambda b: None)
    model = timed_batches(iter(lambda: first, None), steps, warmup, step)
    both = timed_batches(batches(), steps, warmup, step)
    limit = 'loader' if loader < model else 'model step'
    return {'cfg': str(cfg), 'img_size': img_size, 'batch': batch, 'device': str(trainer.device),
            'precision': str(trainer.amp_dtype).replace('torch.', '') if trainer.amp_dtype
            else 'fp32', 'workers': trainer.train_loader.num_workers,
            'cached': trainer.train_set.images[0] is not None,
            'loader_img_per_s': round(loader, 1), 'step_img_per_s': round(model, 1),
            'end_to_end_img_per_s': round(both, 1), 'end_to_end_of_step': round(both / model, 3),
            'limit': limit}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--cfg', nargs='+', default=['cfg/yolov3-mini.cfg'])
    p.add_argument('--img-size', type=int, default=320)
    p.add_argument('--batch-size', type=int, default=16)
    p.add_argument('--device', default='')
    p.add_argument('--steps', type=int, default=10)
    p.add_argument('--json', default='runs/bench/train_speed.json')
    p.add_argument('--end-to-end', action='store_true',
                   help="loader, step and both through train.py's Trainer (see above)")
    p.add_argument('--data', default='data/shapes.data', help='--end-to-end: the dataset')
    p.add_argument('--workers', type=int, default=None, help="--end-to-end: train.py's default")
    p.add_argument('--amp', action=argparse.BooleanOptionalAction, default=None,
                   help="--end-to-end: mixed precision (default: train.py's)")
    p.add_argument('--cache-images', action=argparse.BooleanOptionalAction, default=None,
                   help="--end-to-end: decoded images in RAM (default: train.py's)")
    opt = p.parse_args(argv)
    if opt.end_to_end:
        return print_end_to_end(opt)
    device = select_device(opt.device)
    # one fresh process per measurement: CPU peak memory (max RSS) is per process
    ctx = multiprocessing.get_context('spawn')
    results = []
    for c in opt.cfg:
        for amp in (False, True):
            with ctx.Pool(1) as pool:
                results.append(pool.apply(measure, (c, opt.img_size, opt.batch_size, device, amp,
                                                    opt.steps)))
    rows = [['cfg', 'size', 'batch', 'device', 'precision', 'img/s', 'peak MB']]
    rows += [[Path(r['cfg']).stem, r['img_size'], r['batch'], r['device'], r['precision'],
              r['img_per_s'], r['peak_mem_mb']] for r in results]
    print(AsciiTable(rows).table)
    write_result(opt.json, {'rows': results})


def print_end_to_end(opt):
    given = {k: getattr(opt, k) for k in ('workers', 'amp', 'cache_images')
             if getattr(opt, k) is not None}
    results = [end_to_end(c, opt.data, opt.img_size, opt.batch_size, opt.device, given,
                          opt.steps) for c in opt.cfg]
    rows = [['cfg', 'size', 'batch', 'device', 'precision', 'workers', 'cached', 'loader img/s',
             'step img/s', 'end-to-end img/s', 'of step', 'limit']]
    rows += [[Path(r['cfg']).stem, r['img_size'], r['batch'], r['device'], r['precision'],
              r['workers'], r['cached'], r['loader_img_per_s'], r['step_img_per_s'],
              r['end_to_end_img_per_s'], f"{r['end_to_end_of_step']:.0%}", r['limit']]
             for r in results]
    print(AsciiTable(rows).table)
    write_result(opt.json, {'rows': results})
    return results


if __name__ == '__main__':
    main()
