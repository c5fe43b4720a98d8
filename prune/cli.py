"""The prune command: ``python3 -m prune --method NAME [its flags]`` for every method in
prune/methods.py's registry; the reference toolkit's root scripts (normal_prune.py ...) are the
same command with the method fixed."""
from __future__ import annotations

import argparse
import sys

from prune.methods import METHODS
from prune.runner import script_main
from utils.options import Parser


def method_parser():
    """--method alone; the method's own flags are parsed by its parser (prune/runner.py)."""
    methods = '\n'.join(f'  {name:14} {m.doc.strip().splitlines()[0]}'
                        for name, m in METHODS.items())
    p = Parser(prog='python3 -m prune', add_help=False,
               formatter_class=argparse.RawDescriptionHelpFormatter,
               description=f'Prune a sparse-trained checkpoint; writes a reduced cfg + weights.'
                           f'\n\nmethods:\n{methods}')
    p.add_argument('--method', required=True, choices=list(METHODS),
                   help="the method; then --help for its own flags")
    return p


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv in (['-h'], ['--help']):
        method_parser().print_help()
        return None
    known, rest = method_parser().parse_known_args(argv)
    return method_main(known.method, f'python3 -m prune --method {known.method}')(rest)


def method_main(method, prog=''):
    """The command of one method (its root script, or -m prune --method with it)."""
    return script_main(method, METHODS[method].doc, prog)
