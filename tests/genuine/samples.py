"""Where the genuine files live for the genuine-data tests: ``../shared/data`` beside the repository (the project's
machines), else the cache that ``python -m tests.genuine.fetch`` fills (anyone with a network); when neither holds
them, the tests skip, saying how to fetch them. The registry of every file (public source, size, MD5, the official
row it reproduces) is ``samples.json`` beside this file; the files themselves are never committed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

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


SHARED_DATA = data_root()
FETCH_HINT = ("the genuine samples are not here: they are in ../shared/data on the project's machines; elsewhere run "
              "`python -m tests.genuine.fetch` (needs a network; downloads about 60 MB, MD5-checked, into "
              f"{cache_folder()})")
