"""python3 -m models --cfg CFG [--img-size N] [--json]: per-layer summary with darknet's BFLOPs."""
import argparse
import json
import sys

from terminaltables import AsciiTable

from models.cfg import CfgError
from models.darknet import Darknet


def parse_opt(argv=None):
    p = argparse.ArgumentParser(prog='python3 -m models', description=__doc__)
    p.add_argument('--cfg', required=True, help='darknet .cfg file')
    p.add_argument('--img-size', type=int, nargs='+', default=None,
                   help='input size (one value, or height width); default: the cfg [net] size')
    p.add_argument('--json', action='store_true', help='print JSON instead of tables')
    return p.parse_args(argv)


def fmt_shape(shape):
    c, h, w = shape
    return f'{h}x{w}x{c}'


def run(cfg, img_size=None, as_json=False):
    model = Darknet(cfg)
    size = img_size if img_size is None or len(img_size) == 2 else (img_size[0], img_size[0])
    info = model.info(tuple(size) if size else None)
    if as_json:
        print(json.dumps(info))
        return info
    rows = [['#', 'type', 'filters', 'input', 'output', 'params', 'BFLOPs']]
    for layer in info['layers']:
        rows.append([layer['index'], layer['type'], layer['filters'], fmt_shape(layer['input']),
                     fmt_shape(layer['output']), f"{layer['params']:,}", f"{layer['bflops']:.3f}"])
    rows.append(['', 'total', '', '', '', f"{info['params']:,}", f"{info['bflops']:.3f}"])
    table = AsciiTable(rows, f' {cfg} ')
    table.inner_footing_row_border = True
    print(table.table)
    return info


def main(argv=None):
    opt = parse_opt(argv)
    try:
        run(opt.cfg, opt.img_size, opt.json)
    except CfgError as e:
        print(f'error: {e}', file=sys.stderr)
        sys.exit(1)


if __name__ == '__main__':
    main()
