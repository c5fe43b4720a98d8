"""Every command's run(**kw) refuses a misspelt option in one line naming the closest valid one,
before any work (no file is read, nothing is written)."""
import functools
import importlib

import pytest

from prune.runner import run_method
from utils.errors import OptionError

# (module, function, a misspelt keyword, the name it should suggest)
COMMANDS = [
    ('train', 'run', 'epoch', 'epochs'),
    ('test', 'run', 'conf_thresh', 'conf_thres'),
    ('detect', 'run', 'sourc', 'source'),
    ('export', 'run', 'formt', 'fmt'),
    ('compress', 'run', 'keep_bflop', 'keep_bflops'),
    ('quantize.ptq', 'run', 'calibs', 'calib'),
    ('quantize.export_int', 'run', 'weigths', 'weights'),
    ('quantize.sensitivity', 'run', 'max_dropp', 'max_drop'),
    ('data.kmeans_anchors', 'run', 'generation', 'generations'),
    *[(f'prune --method {m}', '', 'percnt', 'percent')
      for m in ('normal', 'regular', 'shortcut', 'slim', 'layer_channel')],
    ('prune --method layer', '', 'shortcut', 'shortcuts'),
    ('prune --method cfg', '', 'weight', 'weights'),
]


@pytest.mark.parametrize('module,func,wrong,right', COMMANDS, ids=[c[0] for c in COMMANDS])
def test_a_misspelt_option_names_the_closest(module, func, wrong, right, tmp_path,
                                              monkeypatch):
    monkeypatch.chdir(tmp_path)
    if module.startswith('prune --method '):
        run = functools.partial(run_method, module.split()[-1])
    else:
        run = getattr(importlib.import_module(module), func)
    with pytest.raises(OptionError) as e:
        run(**{wrong: 1})
    message = str(e.value)
    assert '\n' not in message and f"'{wrong}'" in message and f'did you mean {right}?' in message
    assert not list(tmp_path.iterdir())  # refused before anything was written
