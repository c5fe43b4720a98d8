"""The integer model's manifest and tensors, mutated one field at a time (types swapped, numbers
out of range, keys removed, tensors of the wrong dtype or shape): every mutation is refused with
one line by the loader's check, or runs to exactly the integers of the unmutated model."""
import copy
import json
import random

import numpy as np
import pytest
import torch

from quantize import int_runtime
from quantize.config import QuantConfig
from quantize.export_int import integer_model
from quantize.int_schema import Bad, validate
from quantize.qat import quantize_model
from tests.bad_input import changed
from tests.conftest import _built
from tests.test_quantize import calibrate, x_batch

MUTATIONS = 500


@pytest.fixture(scope='module')
def valid():
    model = calibrate(quantize_model(copy.deepcopy(_built('yolov3-mini')), QuantConfig(mode=3)),
                      x_batch())
    model.img_size = (64, 96)
    manifest, arrays = integer_model(model)
    manifest = json.loads(json.dumps(manifest))  # as a file gives it back
    pixels = torch.round(x_batch(1) * 255).to(torch.uint8).numpy()
    return manifest, arrays, pixels, int_runtime.run(manifest, arrays, pixels)


def leaves(tree, path=()):
    """Every (path, value) in a JSON tree, containers included."""
    yield path, tree
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from leaves(v, (*path, k))
    elif isinstance(tree, list):
        for k, v in enumerate(tree):
            yield from leaves(v, (*path, k))


def swaps(value):
    """Values of other types, and numbers out of any sensible range."""
    out = ['x', None, [], {}, True, 1.5, float('nan'), -1, 0, 10 ** 9, -10 ** 9]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        out += [value * 1000, -value, value + 0.5, 2 ** 70]
    return [v for v in out if not (type(v) is type(value) and v == value)]


def mutate(manifest, arrays, rng):
    """One mutation: (what, manifest, arrays)."""
    if rng.random() < 0.2:  # a tensor
        name = rng.choice(sorted(arrays))
        a = dict(arrays)
        how = rng.choice(['removed', 'float', 'shorter', 'longer'])
        if how == 'removed':
            del a[name]
        elif how == 'float':
            a[name] = arrays[name].astype(np.float32)
        elif how == 'shorter':
            a[name] = arrays[name].reshape(-1)[:-1] if arrays[name].size > 1 else \
                arrays[name].reshape(-1)[:0]
        else:
            a[name] = np.concatenate([arrays[name].reshape(-1), arrays[name].reshape(-1)[:1]])
        return f'tensor {name} {how}', manifest, a
    paths = [p for p, _ in leaves(manifest) if p]
    path = rng.choice(paths)
    value = dict(leaves(manifest))[path]
    if rng.random() < 0.3 and isinstance(path[-1], str):
        return f'{path} removed', changed(copy.deepcopy(manifest), path, remove=True), arrays
    new = rng.choice(swaps(value))
    return f'{path} = {new!r}', changed(copy.deepcopy(manifest), path, new), arrays


def test_single_field_mutations_are_refused_or_change_nothing(valid):
    manifest, arrays, pixels, want = valid
    validate(manifest, arrays)  # the unmutated model passes
    rng = random.Random(0)
    refused = 0
    for _ in range(MUTATIONS):
        what, m, a = mutate(manifest, arrays, rng)
        try:
            validate(m, a)
        except Bad as e:
            assert '\n' not in str(e) and str(e), what
            refused += 1
            continue
        got = int_runtime.run(m, a, pixels)  # accepted: must run to the same integers
        assert set(got) == set(want), what
        assert all(np.array_equal(got[k], want[k]) for k in want), what
    assert refused > MUTATIONS * 0.8  # most single-field damage is damage


def test_the_loader_names_the_file(valid, tmp_path):
    manifest, arrays, _, _ = valid
    bad = copy.deepcopy(manifest)
    bad['layers'][3]['stride'] = 0
    (tmp_path / 'm_int.json').write_text(json.dumps(bad))
    np.savez(tmp_path / 'm_int.npz', **arrays)
    with pytest.raises(int_runtime.IntModelError, match=r'm_int\.json: layer 3: stride=0'):
        int_runtime.load(tmp_path / 'm_int.json')
    (tmp_path / 'm_int.npz').write_bytes((tmp_path / 'm_int.npz').read_bytes()[:200])  # cut
    (tmp_path / 'm_int.json').write_text(json.dumps(manifest))
    with pytest.raises(int_runtime.IntModelError, match=r'm_int\.npz: cannot read'):
        int_runtime.load(tmp_path / 'm_int.json')
