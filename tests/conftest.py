"""Shared test fixtures: isolated caches, fake releases in the true format, and a local HTTP file server.

No test reaches outside this machine: downloads default to a closed port on 127.0.0.1, and the servers the
tests start listen on 127.0.0.1 only.
"""

import os
import tempfile

# Before datasets is imported: a private HF home, and a dead loopback mirror as the default download base so a
# test that forgot its own server fails fast instead of reaching Zenodo.
_HOME = tempfile.mkdtemp(prefix="medmnist-plus-tests-")
os.environ["HF_HOME"] = os.path.join(_HOME, "hf")
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["MEDMNIST_PLUS_BASE_URL"] = "http://127.0.0.1:9/closed"
os.environ["MEDMNIST_PLUS_MEDMNIST_ROOT"] = os.path.join(_HOME, "empty-medmnist-root")

# A session-wide fake Hugging Face Hub on 127.0.0.1 (tests/fakes/hub_server.py). huggingface_hub and datasets read these
# variables at import time, so its port is bound here, before they are imported; it serves only once a test asks
# for the `hub_server` fixture (or `hub_repo_id`), and refuses connections until then. Xet is off so uploads take
# the LFS path; the token is a dummy (the server accepts any Bearer token and never records its value).
from tests.fakes.hub_server import hub_repo_id, hub_server, reserve_session_hub_server  # noqa: E402,F401

_HUB_SERVER = reserve_session_hub_server(os.path.join(_HOME, "hub"))
os.environ["HF_ENDPOINT"] = _HUB_SERVER.endpoint
os.environ["HF_HUB_DISABLE_XET"] = "1"
os.environ["HF_TOKEN"] = "hf_fake_test_token"
os.environ["HF_HUB_ETAG_TIMEOUT"] = "10"
os.environ["HF_HUB_DOWNLOAD_TIMEOUT"] = "30"
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
os.environ["HF_UPDATE_DOWNLOAD_COUNTS"] = "0"  # no download-count HEAD to s3.amazonaws.com

import dataclasses  # noqa: E402
from pathlib import Path  # noqa: E402
import http.server  # noqa: E402
import re  # noqa: E402
import threading  # noqa: E402

import datasets  # noqa: E402
import pytest  # noqa: E402

import medmnist_plus_common  # noqa: E402,F401  (installs the load_dataset hook)
from medmnist_plus_common.release import download  # noqa: E402
from medmnist_plus_common.catalog import load_catalog  # noqa: E402

datasets.disable_progress_bars()
# Loading a Hub repo asks the dataset viewer at "datasets-server.<HF_ENDPOINT host>" for exported infos: a DNS
# lookup of a name that does not exist here. Tests never need it.
datasets.config.USE_PARQUET_EXPORT = False



@pytest.fixture
def cache_dir(tmp_path):
    return str(tmp_path / "hf-cache")


@pytest.fixture
def release_md5(monkeypatch):
    """Make the catalog publish ``md5`` for one release file (to download a synthetic file through the builder)."""

    def patch(flag, size, md5):
        catalog = load_catalog()
        facts = catalog.datasets[flag]
        files = dict(facts.files)
        files[size] = dataclasses.replace(files[size], md5=md5)
        monkeypatch.setitem(catalog.datasets, flag, dataclasses.replace(facts, files=files))

    return patch


class FileServer(http.server.ThreadingHTTPServer):
    """Serves ``files`` by name on 127.0.0.1 with HTTP Range support; ``plan[name]`` scripts faults per request.

    Plan actions, consumed one per request: ``"ok"``, an HTTP status code such as ``503`` (sent with
    ``Retry-After: 0``), ``"drop"`` (send half the body, then close the connection).
    """

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files = {}
        self.plan = {}
        self.requests = []

    @property
    def base_url(self):
        return f"http://127.0.0.1:{self.server_address[1]}/files"


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        server = self.server
        name = self.path.split("?")[0].rsplit("/", 1)[-1]
        server.requests.append((name, self.headers.get("Range")))
        action = server.plan.get(name, ["ok"]).pop(0) if server.plan.get(name) else "ok"
        if name not in server.files:
            self.send_error(404)
            return
        if isinstance(action, int):
            self.send_response(action)
            self.send_header("Retry-After", "0")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = server.files[name]
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if match:
            start = int(match.group(1))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        payload = body[start:]
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if action == "drop":
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.wfile.write(payload)


@pytest.fixture
def file_server(monkeypatch):
    server = FileServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setattr(download, "BACKOFF_SECONDS", 0.01)
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(params=["stream", "unpack"])
def gz_reading(request, monkeypatch):
    """Both ways a .nii.gz is read: streamed up to each window (small files), or decompressed once to a temporary
    file (files above nifti.UNPACK_ABOVE; here every .nii.gz)."""
    from medmnist_plus_common.recipes.readers import nifti
    if request.param == "unpack":
        monkeypatch.setattr(nifti, "UNPACK_ABOVE", 0)
        monkeypatch.setattr(nifti, "_unpacked", type(nifti._unpacked)())
    return request.param


@pytest.fixture(scope="module")
def medmnist_datasets():
    """medmnist 3.0.2's dataset classes, for the drop-in's comparisons (skips without medmnist or torch)."""
    from tests.integration.test_compat import official_package

    return official_package(classes=True)


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    """One datasets cache for a module's builds of the same files."""
    return str(tmp_path_factory.mktemp("compat-cache"))


TIERS = ("unit", "datasets", "integration", "genuine")


def pytest_collection_modifyitems(items):
    """Each test is marked with its tier, the folder it lives in: ``pytest -m unit`` runs the fast core tests,
    ``-m genuine`` the proofs on genuine files (see README, Testing)."""
    for item in items:
        parts = item.path.relative_to(Path(__file__).parent).parts
        if parts and parts[0] in TIERS:
            item.add_marker(getattr(pytest.mark, parts[0]))
