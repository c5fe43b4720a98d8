"""data.fetch: pinned checksums, whole sets or nothing, resumed downloads, clear offline errors.
Uses ../shared/real (the reference layout) through --from and through a server on 127.0.0.1."""
import functools
import hashlib
import http.server
import shutil
import subprocess
import sys
import threading

import pytest

from data import fetch
from tests.conftest import ROOT

REAL = ROOT.parent / 'shared' / 'real'
needs_real = pytest.mark.skipif(not REAL.is_dir(), reason=f'{REAL} (the real files) is absent')


def cli(*args):
    return subprocess.run([sys.executable, '-m', 'data.fetch', *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def layout(tmp_path, name):
    """A copy of the reference layout holding only ``name``'s files (editable)."""
    src = tmp_path / 'src'
    for it in fetch.items(name):
        (src / it.rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REAL / it.rel, src / it.rel)
    return src


def final_files(root):
    return sorted(p for top in ('weights', 'datasets') for p in (root / top).rglob('*')
                  if p.is_file() and '.fetch' not in p.parts)


@needs_real
def test_fetch_from_a_folder_places_verified_files_then_does_nothing(tmp_path):
    r = cli('yolo-fastest-1.1', 'coco128', '--from', REAL, '--root', tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / 'weights' / 'yolo-fastest-1.1.weights').stat().st_size == 1384268
    assert len(list((tmp_path / 'datasets/coco128/images/val2017').glob('*.jpg'))) == 128
    assert len(list((tmp_path / 'datasets/coco128/labels/val2017').glob('*.txt'))) == 128
    assert not (tmp_path / 'datasets' / '.fetch').exists()
    again = cli('yolo-fastest-1.1', 'coco128', '--from', REAL, '--root', tmp_path)
    assert again.returncode == 0
    assert again.stderr.count('already present and verified') == 2


@needs_real
def test_one_corrupted_byte_is_refused_by_name_and_nothing_is_placed(tmp_path):
    src = layout(tmp_path, 'yolo-fastest-1.1')
    weights = src / 'weights' / 'yolo-fastest-1.1.weights'
    data = bytearray(weights.read_bytes())
    data[1000] ^= 1
    weights.write_bytes(bytes(data))
    out = tmp_path / 'out'
    r = cli('yolo-fastest-1.1', '--from', src, '--root', out)
    assert r.returncode == 1
    assert len(r.stderr.strip().splitlines()) == 1
    assert 'yolo-fastest-1.1.weights' in r.stderr and 'SHA-256' in r.stderr
    assert final_files(out) == []  # the cfg, gathered first and fine, is not placed either


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder, honouring 'Range: bytes=N-' like the public servers do; counts bytes."""
    sent = 0

    def log_message(self, *args):
        pass

    def do_GET(self):
        path = self.translate_path(self.path)
        spec = self.headers.get('Range', '')
        try:
            data = open(path, 'rb').read()  # noqa: SIM115 (small test files)
        except OSError:
            self.send_error(404)
            return
        start = int(spec[6:-1]) if spec.startswith('bytes=') else 0
        self.send_response(206 if start else 200)
        self.send_header('Content-Length', str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:])
        RangeHandler.sent += len(data) - start


@pytest.fixture
def server(tmp_path):
    src = layout(tmp_path, 'yolo-fastest-1.1')
    handler = functools.partial(RangeHandler, directory=str(src))
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    RangeHandler.sent = 0
    yield f'http://127.0.0.1:{httpd.server_address[1]}'
    httpd.shutdown()


@needs_real
def test_a_download_resumes_where_it_stopped(server, tmp_path):
    out = tmp_path / 'out'
    weights = fetch.items('yolo-fastest-1.1', out)[1]
    assert weights.rel.endswith('.weights')
    staged = fetch._stage_folder('yolo-fastest-1.1', out) / weights.rel
    staged.parent.mkdir(parents=True)
    head = (REAL / weights.rel).read_bytes()[:1_000_000]
    staged.with_name(staged.name + '.part').write_bytes(head)  # a download killed at 1 MB
    assert fetch.fetch('yolo-fastest-1.1', mirror=server, root=out) == 'placed'
    assert fetch.sha256_of(weights.dest) == weights.sha256
    cfg_bytes = (REAL / 'weights' / 'yolo-fastest-1.1.cfg').stat().st_size
    assert RangeHandler.sent == cfg_bytes + 1384268 - 1_000_000  # only the rest was sent


def test_offline_without_from_names_the_url_and_the_way_out(tmp_path):
    r = cli('yolov3-tiny', '--mirror', 'http://127.0.0.1:9', '--root', tmp_path)
    assert r.returncode == 1
    line = r.stderr.strip()
    assert len(line.splitlines()) == 1
    assert 'http://127.0.0.1:9/weights/yolov3-tiny.cfg' in line and '--from' in line
    assert final_files(tmp_path) == []


def test_every_pinned_file_has_a_public_home():
    for name in fetch.SETS:
        its = fetch.items(name)
        assert its and all(it.url is None or it.url.startswith('https://') for it in its)
        assert all(len(it.sha256) == 64 for it in its)
    typed = {it.rel: it.sha256 for it in fetch.items('camvid') if it.url is None}
    assert set(typed) == {'camvid/names', 'camvid/colors'}
    for rel, sha in typed.items():  # written from the code, checked like the rest
        text = fetch.CAMVID_TEXT[rel.split('/')[1]].encode()
        assert hashlib.sha256(text).hexdigest() == sha


def test_a_data_file_whose_set_is_missing_says_what_to_fetch(tmp_path):
    data = tmp_path / 'c.data'
    data.write_text(f'classes=80\ntrain=none/train\nvalid=none/val\n'
                    f'names={ROOT / "data" / "coco.names"}\nfetch=coco128\n')
    r = subprocess.run([sys.executable, 'test.py', '--data', str(data), '--weights',
                        str(ROOT / 'weights' / 'yolov3-mini.pt')], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    assert 'python3 -m data.fetch coco128' in r.stderr and 'train=' in r.stderr
