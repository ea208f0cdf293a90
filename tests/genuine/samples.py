"""Where the genuine files live for the genuine-data tests: ``../shared/data`` beside the repository (the project's
machines), else the cache that ``python -m tests.genuine.fetch`` fills (anyone with a network); when neither holds
them, the tests skip, saying how to fetch them. The registry of every file (public source, size, MD5, the official
row it reproduces) is ``samples.json`` beside this file; the files themselves are never committed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REGISTRY = Path(__file__).with_name("samples.json")
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
CACHE_ENV = "MEDMNIST_PLUS_GENUINE_DATA"


def cache_folder() -> Path:
    """Where ``tests.genuine.fetch`` puts the files (``$MEDMNIST_PLUS_GENUINE_DATA``, else the user cache)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "medmnist-plus" / "genuine"


def registry() -> dict:
    return json.loads(REGISTRY.read_text())


def data_root() -> Path:
    """``../shared/data`` when present, else the fetch cache (which may be empty: the tests then skip)."""
    return SHARED if SHARED.is_dir() else cache_folder()


def _download_size() -> str:
    """What a fetch downloads, from the registry: the samples' bytes, and the official files the rows come from."""
    entries = registry()
    samples = sum(e["bytes"] for e in entries["files"] if "derived" not in e)
    releases = sorted({e["derived"]["release"] for e in entries["files"] if "derived" in e}
                      - {e["path"] for e in entries["files"]})
    # Their sizes are not recorded; their arrays hold at most 50 MB uncompressed (5,856 images of 28x28 px,
    # 780 of 64x64, 1,908 volumes of 28^3), stored deflated.
    return (f"{samples / 1e6:.1f} MB of samples, and {len(releases)} official release files the rows files are rebuilt "
            f"from: {', '.join(releases)}, under 50 MB")


SHARED_DATA = data_root()
_WHERE = (f"{cache_folder()} (from ${CACHE_ENV})" if os.environ.get(CACHE_ENV) else
          f"{cache_folder()} (${CACHE_ENV} chooses another folder)")
FETCH_HINT = (f"genuine files are looked for in {SHARED} (the project's machines), then in {_WHERE}. To fetch them "
              f"there run `python -m tests.genuine.fetch` from the repository root (needs a network and pooch; "
              f"downloads {_download_size()}, MD5-checked)")


def registered(folder: str) -> list:
    """The registered paths under ``folder`` (relative to the data folder), e.g. every file of ``raw/busi``."""
    return [e["path"] for e in registry()["files"] if e["path"].startswith(folder.rstrip("/") + "/")]


def missing(*names: str) -> list:
    """Which of these paths (relative to the data folder) are absent."""
    return [name for name in names if not (SHARED_DATA / name).exists()]


def _absent(names: list) -> str:
    what = names[0] if len(names) == 1 else f"{len(names)} genuine files ({names[0]}, ...)"
    return f"{what} absent from {SHARED_DATA}: {FETCH_HINT}"


def needs(*names: str):
    """Skip unless every one of these genuine files (paths relative to the data folder) is present, saying how to
    fetch them."""
    absent = missing(*names)
    return pytest.mark.skipif(bool(absent), reason=_absent(absent) if absent else "")


def require(*names: str) -> None:
    """Inside a test: skip unless every one of these genuine files is present (the message says how to fetch them)."""
    absent = missing(*names)
    if absent:
        pytest.skip(_absent(absent))
