"""Plots (matplotlib, Agg backend) and box drawing.

Figures are laid out by hand (tight_layout doubles the cost of a save) and written
atomically: a killed run leaves the previous plot, never half a PNG.
"""
import csv
import math
from pathlib import Path

import cv2
import numpy as np

from utils.files import atomic_path


def pyplot():
    """matplotlib.pyplot on the Agg backend, imported on first use (importing it costs every
    command's start a good part of a second otherwise)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig, path, dpi=120):
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format='png')
    pyplot().close(fig)


def class_color(c):
    """A stable, distinct BGR color per class index."""
    hue = (c * 0.618033988749895) % 1.0
    hsv = np.uint8([[[int(hue * 180), 200, 230]]])
    return tuple(int(v) for v in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0])


def palette(n, colormap=None):
    """(n, 3) BGR colours: a cfg's colormap= (values in threes) where it gives them, else
    class_color."""
    colors = [class_color(c) for c in range(n)]
    if colormap:
        given = np.asarray(colormap[:3 * n], np.int64).reshape(-1, 3)
        colors[:len(given)] = [tuple(int(v) for v in c) for c in given]
    return np.array(colors, np.uint8)


def draw_mask(img, mask, colors, alpha=0.5):
    """Blend a class map (the size of img) into a BGR image, in place; classes coloured black
    (a background in lightNet's colormaps) and pixels past the palette are left as they are."""
    drawn = (mask < len(colors))
    drawn[drawn] = colors[mask[drawn]].any(-1)
    img[drawn] = (img[drawn] * (1 - alpha) + colors[mask[drawn]] * alpha).astype(np.uint8)
    return img


def text_color(bgr):
    """Black on light label backgrounds, white on dark ones (perceived luminance)."""
    b, g, r = bgr
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 150 else (255, 255, 255)


def draw_boxes(img, det, names):
    """Draw (n, 6) xyxy, conf, cls detections with labels onto a BGR image, in place: boxes
    first, then the labels from the least to the most confident (the most confident on top),
    each kept inside the image, in black or white for contrast with its class colour."""
    thickness = max(1, round(sum(img.shape[:2]) / 600))
    rows = sorted(det.tolist(), key=lambda d: d[4])
    for x1, y1, x2, y2, _, cls in rows:
        cv2.rectangle(img, (int(x1), int(y1)), (int(x2), int(y2)), class_color(int(cls)),
                      thickness, cv2.LINE_AA)
    scale, weight = thickness / 3, max(thickness - 1, 1)
    h, w = img.shape[:2]
    for x1, y1, _, _, conf, cls in rows:
        color = class_color(int(cls))
        label = f'{names[int(cls)] if int(cls) < len(names) else int(cls)} {conf:.2f}'
        (tw, th), base = cv2.getTextSize(label, 0, scale, weight)
        left = int(min(max(x1, 0), max(w - tw - 2, 0)))
        top = int(y1) - th - base - 2  # above the box, or inside its top edge
        top = top if top >= 0 else int(min(max(y1, 0), max(h - th - base - 2, 0)))
        cv2.rectangle(img, (left, top), (left + tw + 2, top + th + base + 2), color, -1)
        cv2.putText(img, label, (left + 1, top + th + 1), 0, scale, text_color(color), weight,
                    cv2.LINE_AA)
    return img


def plot_curves(curves, names, classes, save_dir):
    """PR curve (IoU 0.5) and F1-confidence curve, per class and their mean."""
    save_dir = Path(save_dir)
    conf, p, r, f1 = curves['conf'], curves['p'], curves['r'], curves['f1']
    fig, ax = pyplot().subplots(1, 1, figsize=(7, 5))
    for c in classes:
        order = np.argsort(r[c])
        ax.plot(r[c][order], p[c][order], linewidth=1, label=names[c])
    ax.set(xlabel='Recall', ylabel='Precision', xlim=(0, 1), ylim=(0, 1.02),
           title='Precision-recall (IoU 0.5)')
    ax.legend(loc='lower left', fontsize=8)
    save_figure(fig, save_dir / 'PR_curve.png', 150)
    fig, ax = pyplot().subplots(1, 1, figsize=(7, 5))
    for c in classes:
        ax.plot(conf, f1[c], linewidth=1, label=names[c])
    if len(classes):
        mean = f1[classes].mean(0)
        ax.plot(conf, mean, linewidth=3, color='blue',
                label=f'all {mean.max():.2f} at {conf[mean.argmax()]:.3f}')
    ax.set(xlabel='Confidence', ylabel='F1', xlim=(0, 1), ylim=(0, 1.02), title='F1-confidence')
    ax.legend(loc='lower left', fontsize=8)
    save_figure(fig, save_dir / 'F1_curve.png', 150)


def plot_confusion_matrix(matrix, names, save_dir):
    labels = list(names) + ['background']
    norm = matrix / np.maximum(matrix.sum(0, keepdims=True), 1)  # columns: true classes
    n = len(labels)
    fig, ax = pyplot().subplots(1, 1, figsize=(2.2 + 0.6 * n, 2 + 0.5 * n))
    fig.subplots_adjust(left=1.6 / (2.2 + 0.6 * n), bottom=1.6 / (2 + 0.5 * n), right=0.97,
                        top=1 - 0.4 / (2 + 0.5 * n))
    ax.imshow(norm, cmap='Blues', vmin=0, vmax=1)
    ax.set_xticks(range(n), labels, rotation=90)
    ax.set_yticks(range(n), labels)
    for i in range(n):
        for j in range(n):
            if matrix[i, j]:
                ax.text(j, i, f'{norm[i, j]:.2f}', ha='center', va='center', fontsize=7,
                        color='white' if norm[i, j] > 0.5 else 'black')
    ax.set(xlabel='True', ylabel='Predicted', title='Confusion matrix (columns normalized)')
    save_figure(fig, Path(save_dir) / 'confusion_matrix.png', 150)


def plot_results(csv_path):
    """results.png beside results.csv: losses, P, R, mAP@0.5, mAP@0.5:0.95 per epoch."""
    with open(csv_path) as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return
    epochs = [int(r['epoch']) + 1 for r in rows]
    first = [k for k in ('box', 'obj', 'cls', 'precision', 'recall', 'map50', 'map50_95')
             if k in rows[0]]  # a segmentation-only run has none of these
    keys = first + [k for k in rows[0] if k not in first + ['epoch', 'total', 'lr', 'seconds']]
    cols = 4
    n_rows = math.ceil(len(keys) / cols)
    fig, axes = pyplot().subplots(n_rows, cols, figsize=(12, 2.8 * n_rows), squeeze=False)
    fig.subplots_adjust(left=0.05, right=0.98, bottom=0.25 / n_rows, top=1 - 0.3 / n_rows,
                        hspace=0.45, wspace=0.3)
    for ax, k in zip(axes.ravel(), keys):
        ax.plot(epochs, [float(r[k]) for r in rows], marker='.')
        ax.set_title(k)
    for ax in axes.ravel()[len(keys):]:
        ax.axis('off')
    save_figure(fig, Path(csv_path).with_name('results.png'))


GAMMA_BINS = np.logspace(-4, 1, 51)  # |gamma| histogram bins; smaller values land in the first


def gamma_histogram(values) -> list[int]:
    clipped = np.clip(np.asarray(values, dtype=np.float64), GAMMA_BINS[0], GAMMA_BINS[-1])
    return np.histogram(clipped, GAMMA_BINS)[0].tolist()


def plot_gamma_history(history, path):
    """One row per epoch: how the |gamma| of the sparsified BNs spread (log scale)."""
    counts = np.array([h['counts'] for h in history], dtype=np.float64)
    fig, ax = pyplot().subplots(figsize=(8, 4))
    im = ax.imshow(np.log1p(counts), aspect='auto', origin='lower', cmap='viridis',
                   extent=(-4, 1, -0.5, len(history) - 0.5))
    ax.set_xlabel('log10 |gamma|')
    ax.set_ylabel('epoch')
    ax.set_yticks(range(len(history)), [str(h['epoch']) for h in history])
    ax.set_title('BN gamma distribution (colour: log(1 + count))')
    fig.colorbar(im, ax=ax)
    save_figure(fig, path)
