"""python3 -m models --cfg CFG [--img-size N] [--json]: per-layer summary with darknet's BFLOPs."""
import json

from terminaltables import AsciiTable

from models.darknet import Darknet
from models.dialect import DARKNET_FALLBACK, EXTENSION_ACTIVATIONS
from utils.cli import friendly_errors
from utils.options import Parser


def extensions(model):
    """The activations the cfg uses that darknet does not have (toolkit extensions)."""
    return sorted({b.options['activation'] for b in model.blocks[1:]
                   if b.options.get('activation') in EXTENSION_ACTIVATIONS})


def parse_opt(argv=None):
    p = Parser(prog='python3 -m models', description=__doc__)
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
    info['darknet_extensions'] = extensions(model)
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
    if info['darknet_extensions']:
        print(f"toolkit extensions (darknet runs {DARKNET_FALLBACK} instead): "
              f"{', '.join(info['darknet_extensions'])}")
    return info


@friendly_errors
def main(argv=None):
    opt = parse_opt(argv)
    run(opt.cfg, opt.img_size, opt.json)


if __name__ == '__main__':
    main()
