"""A Hugging Face Hub-compatible HTTP server for tests, on 127.0.0.1, built on the standard library.

It speaks the HTTP protocol that stock ``huggingface_hub`` (2.4) and ``datasets`` (5.2) use, so ``push_to_hub``,
``load_dataset`` (map-style and streaming), ``HfApi`` and ``hf_hub_download`` work against it unchanged:

* repositories (model, dataset, space) with a commit history per repository, stored on disk under ``root``;
* the preupload / LFS batch / LFS PUT / verify / NDJSON commit upload path (no Xet: set ``HF_HUB_DISABLE_XET=1``);
* repo info, tree listing (with ``Link`` pagination), paths-info, commits, refs, branches;
* ``/resolve`` downloads with ``Range`` support and the Hub's ``X-Repo-Commit`` / ``ETag`` / ``X-Linked-*`` headers;
* ``/api/validate-yaml``;
* fault injection (:meth:`HubServer.fail_next`) and a request log that never holds token values.

The only non-standard-library import is PyYAML (a dependency of ``huggingface_hub``), used lazily to read README
metadata for ``cardData`` and ``/api/validate-yaml``.

Importing this module has no side effects: call :func:`start_hub_server` to get a running server.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import hmac
import http.server
import json
import os
import re
import secrets
import shutil
import socket
import sys
import threading
import time
import traceback
import urllib.parse
import uuid
from datetime import datetime, timezone
from pathlib import Path

__all__ = ["HubServer", "start_hub_server", "git_blob_sha", "FAULT_KINDS"]

TYPE_TO_PLURAL = {"model": "models", "dataset": "datasets", "space": "spaces"}
PLURAL_TO_TYPE = {v: k for k, v in TYPE_TO_PLURAL.items()}
URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}

#: Request kinds that :meth:`HubServer.fail_next` can target ("*" matches any request).
FAULT_KINDS = (
    "create_repo", "delete_repo", "repo_info", "preupload", "lfs_batch", "lfs_upload", "lfs_verify",
    "lfs_download", "commit", "tree", "paths_info", "commits", "refs", "branch", "settings",
    "resolve", "resolve_head", "validate_yaml", "whoami", "unknown",
)

# Same regex as huggingface_hub.repocard (itself a copy of the Hub server's).
REGEX_YAML_BLOCK = re.compile(r"^(\s*---(?:\r\n|\r|\n))([\S\s]*?)((?:\r\n|\r|\n)---[ \t]*(\r\n|\n|$))")
SHA1_RE = re.compile(r"^[0-9a-f]{40}$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
LFS_SIZE_THRESHOLD = 10 * 1024 * 1024  # the Hub stores regular files up to 10 MB in git

_LFS_LINE = "filter=lfs diff=lfs merge=lfs -text"
DEFAULT_GITATTRIBUTES = "\n".join(
    [f"{pattern} {_LFS_LINE}" for pattern in (
        "*.7z", "*.arrow", "*.bin", "*.bz2", "*.ckpt", "*.ftz", "*.gz", "*.h5", "*.joblib", "*.lfs.*", "*.lz4",
        "*.mds", "*.mlmodel", "*.model", "*.msgpack", "*.npy", "*.npz", "*.onnx", "*.ot", "*.parquet", "*.pb",
        "*.pickle", "*.pkl", "*.pt", "*.pth", "*.rar", "*.safetensors", "saved_model/**/*", "*.tar.*", "*.tar",
        "*.tflite", "*.tgz", "*.wasm", "*.xz", "*.zip", "*.zst", "*tfevents*",
    )]
    + ["# Audio files - uncompressed"] + [f"{p} {_LFS_LINE}" for p in ("*.pcm", "*.sam", "*.raw")]
    + ["# Audio files - compressed"] + [f"{p} {_LFS_LINE}" for p in ("*.aac", "*.flac", "*.mp3", "*.ogg", "*.wav")]
    + ["# Image files - uncompressed"] + [f"{p} {_LFS_LINE}" for p in ("*.bmp", "*.gif", "*.png", "*.tiff")]
    + ["# Image files - compressed"] + [f"{p} {_LFS_LINE}" for p in ("*.jpg", "*.jpeg", "*.webp")]
    + ["# Video files - compressed"] + [f"{p} {_LFS_LINE}" for p in ("*.mp4", "*.webm")]
) + "\n"


def git_blob_sha(data: bytes) -> str:
    """The git object id of a blob holding ``data``."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(oid: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n".encode()


def _now() -> str:
    now = datetime.now(timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def _truthy(value) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def _load_yaml(text: str):
    import yaml  # PyYAML ships with huggingface_hub; imported lazily to keep this module's import cheap

    return yaml.safe_load(text)


class HubError(Exception):
    """An error answered the way the Hub does: status, ``X-Error-Code``, ``X-Error-Message`` and ``{"error": ...}``."""

    def __init__(self, status, code=None, message="", headers=None, body=None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}
        self.body = body


class _Response:
    def __init__(self, status=200, body=b"", headers=None, file=None, content_type="application/json"):
        self.status = status
        self.body = body
        self.headers = dict(headers or {})
        self.file = file  # (path, start, length) streamed from disk
        if content_type and "Content-Type" not in self.headers:
            self.headers["Content-Type"] = content_type

    @classmethod
    def json(cls, data, status=200, headers=None, content_type="application/json"):
        return cls(status, json.dumps(data).encode(), headers, content_type=content_type)


class _Fault:
    def __init__(self, kind, count, status, skip, path, error_code, message):
        self.kind, self.remaining, self.status, self.skip = kind, count, status, skip
        self.path, self.error_code, self.message = path, error_code, message


class _Repo:
    def __init__(self, rtype, repo_id, private, directory, created_at=None):
        self.type, self.id, self.private, self.dir = rtype, repo_id, bool(private), Path(directory)
        self.created_at = created_at or _now()
        self.uid = uuid.uuid4().hex[:24]
        self.refs: dict[str, str] = {}
        self.commits: dict[str, dict] = {}
        self.pr_count = 0

    # -- storage -----------------------------------------------------------------------------------------------
    def blob_path(self, blob: str) -> Path:
        return self.dir / "blobs" / blob

    def lfs_path(self, oid: str) -> Path:
        return self.dir / "lfs" / oid[:2] / oid

    def has_lfs(self, oid: str, size: int | None = None) -> bool:
        path = self.lfs_path(oid)
        return path.is_file() and (size is None or path.stat().st_size == size)

    def save_meta(self):
        meta = {"type": self.type, "id": self.id, "private": self.private, "createdAt": self.created_at,
                "uid": self.uid, "refs": self.refs, "prCount": self.pr_count}
        _atomic_write(self.dir / "repo.json", json.dumps(meta, indent=1).encode())

    def save_commit(self, commit: dict):
        _atomic_write(self.dir / "commits" / f"{commit['id']}.json", json.dumps(commit).encode())

    def read(self, entry: dict) -> bytes:
        path = self.lfs_path(entry["lfs"]["oid"]) if entry.get("lfs") else self.blob_path(entry["blob"])
        return path.read_bytes()

    def entry_file(self, entry: dict) -> Path:
        return self.lfs_path(entry["lfs"]["oid"]) if entry.get("lfs") else self.blob_path(entry["blob"])


def _atomic_write(path: Path, data: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _pattern_matches(pattern: str, path: str) -> bool:
    pattern = pattern.lstrip("/")
    if "/" in pattern:
        return fnmatch.fnmatchcase(path, pattern) or fnmatch.fnmatchcase(path, pattern.replace("**/", ""))
    return fnmatch.fnmatchcase(path.rsplit("/", 1)[-1], pattern)


def _lfs_tracked(gitattributes: str, path: str) -> bool:
    tracked = False
    for line in gitattributes.splitlines():
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        attrs = parts[1:]
        if "filter=lfs" in attrs:
            value = True
        elif "-filter" in attrs or "!filter" in attrs:
            value = False
        else:
            continue
        if _pattern_matches(parts[0], path):
            tracked = value
    return tracked


def _gitignored(gitignore: str, path: str) -> bool:
    ignored = False
    components = path.split("/")
    for line in gitignore.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:] if negate else line
        dir_only = pattern.endswith("/")
        pattern = pattern.rstrip("/")
        if "/" in pattern:
            candidates = ["/".join(components[: i + 1]) for i in range(len(components))]
            hit = any(fnmatch.fnmatchcase(c, pattern.lstrip("/")) for c in candidates)
        else:
            names = components[:-1] if dir_only else components
            hit = any(fnmatch.fnmatchcase(c, pattern) for c in names)
        if hit:
            ignored = not negate
    return ignored


def _string_or_string_list(value) -> bool:
    return isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))


def validate_card_metadata(content: str, repo_type: str = "model"):
    """Hub-like README metadata validation. Returns ``(errors, warnings)`` as lists of messages."""
    match = REGEX_YAML_BLOCK.search(content)
    if not match:
        return [], ["empty or missing yaml metadata in repo card"]
    try:
        data = _load_yaml(match.group(2))
    except Exception as err:  # yaml.YAMLError and friends
        return [f"Invalid YAML in README.md metadata: {err}"], []
    if data is None:
        return [], ["empty or missing yaml metadata in repo card"]
    if not isinstance(data, dict):
        return ["YAML metadata must be a mapping (key: value), got " + type(data).__name__], []
    errors = []
    for key in ("license", "language", "tags", "task_categories", "task_ids", "size_categories",
                "annotations_creators", "language_creators", "multilinguality", "source_datasets", "datasets"):
        if key in data and data[key] is not None and not _string_or_string_list(data[key]):
            errors.append(f'"{key}" must be a string or an array of strings')
    if "pretty_name" in data and not isinstance(data["pretty_name"], str):
        errors.append('"pretty_name" must be a string')
    if "configs" in data:
        configs = data["configs"]
        if not isinstance(configs, list):
            errors.append('"configs" must be an array')
        else:
            seen = set()
            for i, cfg in enumerate(configs):
                if not isinstance(cfg, dict):
                    errors.append(f'"configs[{i}]" must be an object')
                    continue
                name = cfg.get("config_name")
                if not isinstance(name, str) or not name:
                    errors.append(f'"configs[{i}].config_name" is required and must be a non-empty string')
                elif name in seen:
                    errors.append(f'"configs[{i}].config_name" duplicates config "{name}"')
                else:
                    seen.add(name)
                if "default" in cfg and not isinstance(cfg["default"], bool):
                    errors.append(f'"configs[{i}].default" must be a boolean')
                if "data_files" in cfg:
                    files = cfg["data_files"]
                    ok = isinstance(files, str) or isinstance(files, list)
                    if isinstance(files, list):
                        for item in files:
                            if isinstance(item, str):
                                continue
                            if not (isinstance(item, dict) and isinstance(item.get("split"), str)
                                    and _string_or_string_list(item.get("path"))):
                                ok = False
                    if not ok:
                        errors.append(f'"configs[{i}].data_files" must be a path, a list of paths or a list of '
                                      "{split, path} objects")
    if "dataset_info" in data:
        infos = data["dataset_info"]
        infos = infos if isinstance(infos, list) else [infos]
        for i, info in enumerate(infos):
            if not isinstance(info, dict):
                errors.append(f'"dataset_info[{i}]" must be an object')
                continue
            if len(infos) > 1 and not isinstance(info.get("config_name"), str):
                errors.append(f'"dataset_info[{i}].config_name" is required when there are several configs')
            splits = info.get("splits", [])
            if not isinstance(splits, list) or not all(isinstance(s, dict) and isinstance(s.get("name"), str)
                                                         for s in splits):
                errors.append(f'"dataset_info[{i}].splits" must be an array of objects with a "name"')
    return errors, []


class HubServer(http.server.ThreadingHTTPServer):
    """The fake Hub. Start it with :func:`start_hub_server`; ``endpoint`` is its base URL.

    Test helpers: :meth:`files`, :meth:`paths`, :meth:`commits`, :meth:`head`, :meth:`lfs_objects`,
    :meth:`fail_next`, :attr:`requests` (``(method, path, had_auth)`` tuples), :attr:`request_log` (dicts with
    status, kind, range), :attr:`unknown_requests`, :attr:`errors` (server-side tracebacks, should stay empty).
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, root, address=("127.0.0.1", 0), *, user="tester", tree_page_size=1000,
                 expand_page_size=50, lfs_threshold=LFS_SIZE_THRESHOLD, verbose=False, listen=True):
        # listen=False binds the port (so its endpoint is known and stays ours) but refuses connections until
        # start(): a test session reserves its Hub at import and serves it only when a test asks for it.
        super().__init__(address, _Handler, bind_and_activate=False)
        try:
            self.server_bind()
            if listen:
                self.server_activate()
        except BaseException:
            self.server_close()
            raise
        self._listening = listen
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.user = user
        self.tree_page_size = tree_page_size
        self.expand_page_size = expand_page_size
        self.lfs_threshold = lfs_threshold
        self.verbose = verbose
        self.lock = threading.RLock()
        self.requests: list[tuple[str, str, bool]] = []
        self.request_log: list[dict] = []
        self.unknown_requests: list[tuple[str, str]] = []
        self.errors: list[str] = []
        self.faults_triggered: list[dict] = []
        self._faults: list[_Fault] = []
        self._repos: dict[tuple[str, str], _Repo] = {}
        self._secret = secrets.token_bytes(16)
        self._thread = None
        self._load()

    # -- public helpers ----------------------------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    @property
    def serving(self) -> bool:
        return self._thread is not None

    def start(self):
        if not self._listening:
            self.server_activate()
            self._listening = True
        self._thread = threading.Thread(target=self.serve_forever, name="fake-hub", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._thread is not None:  # shutdown() would wait forever if serve_forever never ran
            self.shutdown()
            self._thread.join()
            self._thread = None
        self.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def fail_next(self, kind, count=1, status=500, *, skip=0, path=None, error_code=None,
                  message="Injected fault"):
        """Make the next ``count`` requests of ``kind`` fail, after letting ``skip`` matching requests through.

        ``kind`` is one of :data:`FAULT_KINDS` (``"resolve"`` is a GET on /resolve, ``"resolve_head"`` a HEAD;
        ``"lfs_upload"`` the PUT of an LFS object; ``"*"`` any request). ``path`` optionally restricts to request
        paths containing that substring. ``status`` is an HTTP status (answered with ``{"error": message}`` and
        ``error_code`` as ``X-Error-Code`` if given) or ``"drop"``: close the connection without an answer (a
        /resolve GET sends its headers and half of the body first).

        Note: huggingface_hub retries 408/429/500/502/503/504 and dropped connections on most calls (with
        backoff sleeping 1 s, 2 s, ...), but never the commit POST. Use e.g. ``status=403`` for a hard failure.
        """
        if kind != "*" and kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {FAULT_KINDS}")
        with self.lock:
            self._faults.append(_Fault(kind, count, status, skip, path, error_code, message))

    def clear_faults(self):
        with self.lock:
            self._faults.clear()

    @property
    def pending_faults(self) -> int:
        with self.lock:
            return sum(f.remaining for f in self._faults)

    def reset_log(self):
        with self.lock:
            self.requests.clear()
            self.request_log.clear()
            self.unknown_requests.clear()
            self.faults_triggered.clear()

    def head(self, repo_id, revision="main", repo_type="dataset") -> str:
        with self.lock:
            repo = self._require_repo(repo_type, repo_id)
            return self._resolve_rev(repo, revision)

    def files(self, repo_id, revision="main", repo_type="dataset") -> dict[str, bytes]:
        """``{path: content}`` of the repository at ``revision`` (branch or commit sha)."""
        with self.lock:
            repo = self._require_repo(repo_type, repo_id)
            table = repo.commits[self._resolve_rev(repo, revision)]["files"]
            return {path: repo.read(entry) for path, entry in sorted(table.items())}

    def paths(self, repo_id, revision="main", repo_type="dataset") -> list[str]:
        """Sorted file paths of the repository at ``revision``."""
        with self.lock:
            repo = self._require_repo(repo_type, repo_id)
            return sorted(repo.commits[self._resolve_rev(repo, revision)]["files"])

    def file_entry(self, repo_id, path, revision="main", repo_type="dataset") -> dict | None:
        """``{"size", "sha256", "blob" (git object id; of the pointer for LFS files),
        "lfs": {"oid", "size", "pointerSize"} | None}`` of a file, or None."""
        with self.lock:
            repo = self._require_repo(repo_type, repo_id)
            entry = repo.commits[self._resolve_rev(repo, revision)]["files"].get(path)
            return dict(entry) if entry else None

    def commits(self, repo_id, repo_type="dataset", revision="main") -> list[dict]:
        """History of ``revision``, newest first (like the Hub): ``{"id", "parent", "title", "message", "date",
        "files": sorted paths}``."""
        with self.lock:
            repo = self._require_repo(repo_type, repo_id)
            out = []
            sha = self._resolve_rev(repo, revision)
            while sha:
                commit = repo.commits[sha]
                out.append({k: commit[k] for k in ("id", "parent", "title", "message", "date")}
                           | {"files": sorted(commit["files"])})
                sha = commit["parent"]
            return out

    def lfs_objects(self, repo_id, repo_type="dataset") -> list[str]:
        """Sha256 of every LFS object stored for the repository (referenced or not)."""
        with self.lock:
            repo = self._require_repo(repo_type, repo_id)
            base = repo.dir / "lfs"
            return sorted(p.name for p in base.glob("*/*") if SHA256_RE.match(p.name)) if base.exists() else []

    def repo_exists(self, repo_id, repo_type="dataset") -> bool:
        with self.lock:
            return (repo_type, repo_id) in self._repos

    def create_repo(self, repo_id, repo_type="dataset", private=False) -> None:
        """Create a repository directly (same as POST /api/repos/create)."""
        with self.lock:
            if (repo_type, repo_id) not in self._repos:
                self._create_repo(repo_type, repo_id, private)

    # -- persistence ------------------------------------------------------------------------------------------
    def _repo_dir(self, rtype, repo_id) -> Path:
        return self.root / TYPE_TO_PLURAL[rtype] / repo_id

    def _load(self):
        for meta_path in sorted(self.root.glob("*/*/*/repo.json")):
            try:
                meta = json.loads(meta_path.read_text())
                repo = _Repo(meta["type"], meta["id"], meta["private"], meta_path.parent, meta["createdAt"])
                repo.uid, repo.refs, repo.pr_count = meta["uid"], meta["refs"], meta.get("prCount", 0)
                for commit_path in (meta_path.parent / "commits").glob("*.json"):
                    commit = json.loads(commit_path.read_text())
                    repo.commits[commit["id"]] = commit
                self._repos[(repo.type, repo.id)] = repo
            except (OSError, ValueError, KeyError) as err:
                self.errors.append(f"could not load {meta_path}: {err}")

    def _create_repo(self, rtype, repo_id, private) -> _Repo:
        repo = _Repo(rtype, repo_id, private, self._repo_dir(rtype, repo_id))
        if repo.dir.exists():
            shutil.rmtree(repo.dir)
        repo.dir.mkdir(parents=True)
        self._repos[(rtype, repo_id)] = repo
        # Like the Hub: a new repository starts with one commit holding the default .gitattributes.
        data = DEFAULT_GITATTRIBUTES.encode()
        files = {".gitattributes": self._store_blob(repo, data)}
        self._add_commit(repo, "main", None, "initial commit", "", files)
        return repo

    def _store_blob(self, repo, data: bytes) -> dict:
        blob = git_blob_sha(data)
        path = repo.blob_path(blob)
        if not path.exists():
            _atomic_write(path, data)
        return {"size": len(data), "blob": blob, "sha256": hashlib.sha256(data).hexdigest(), "lfs": None}

    def _add_commit(self, repo, branch, parent, title, message, files) -> dict:
        date = _now()
        digest = hashlib.sha1(json.dumps([parent, title, message, date, repo.id, time.time_ns(),
                                          sorted((p, e["blob"]) for p, e in files.items())]).encode())
        commit = {"id": digest.hexdigest(), "parent": parent, "title": title, "message": message, "date": date,
                  "author": self.user, "files": files}
        repo.commits[commit["id"]] = commit
        repo.refs[branch] = commit["id"]
        repo.save_commit(commit)
        repo.save_meta()
        return commit

    # -- lookups ----------------------------------------------------------------------------------------------
    def _require_repo(self, rtype, repo_id) -> _Repo:
        repo = self._repos.get((rtype, repo_id))
        if repo is None:
            raise KeyError(f"no {rtype} repository {repo_id!r} on the fake Hub")
        return repo

    def _get_repo(self, req, rtype, repo_id, write=False) -> _Repo:
        if write and not req.had_auth:
            raise HubError(401, None, "Invalid credentials in Authorization header")
        repo = self._repos.get((rtype, repo_id))
        if repo is None or (repo.private and not req.had_auth):
            raise HubError(404, "RepoNotFound", "Repository not found")
        return repo

    def _resolve_rev(self, repo, rev) -> str:
        rev = rev or "main"
        if rev.startswith("refs/heads/"):
            rev = rev[len("refs/heads/"):]
        if rev in repo.refs:
            return repo.refs[rev]
        if SHA1_RE.match(rev) and rev in repo.commits:
            return rev
        raise HubError(404, "RevisionNotFound", f"Invalid rev id: {rev}")

    def _read_text(self, repo, files, path) -> str | None:
        entry = files.get(path)
        if entry is None:
            return None
        try:
            return repo.read(entry).decode("utf-8", errors="replace")
        except OSError:
            return None

    def _is_lfs(self, repo, files, path, size, sample) -> bool:
        gitattributes = self._read_text(repo, files, ".gitattributes") or ""
        return _lfs_tracked(gitattributes, path) or size >= self.lfs_threshold or b"\0" in sample

    # -- entries ----------------------------------------------------------------------------------------------
    @staticmethod
    def _dir_oid(files, directory) -> str:
        prefix = directory + "/"
        listing = "\n".join(f"{p} {e['blob']}" for p, e in sorted(files.items()) if p.startswith(prefix))
        return hashlib.sha1(listing.encode()).hexdigest()

    def _file_entry(self, path, entry) -> dict:
        out = {"type": "file", "oid": entry["blob"], "size": entry["size"], "path": path}
        if entry.get("lfs"):
            out["lfs"] = dict(entry["lfs"])
        return out

    def _last_commit(self, repo, sha, path, is_dir) -> dict:
        def state(commit):
            files = commit["files"]
            return self._dir_oid(files, path) if is_dir else (files.get(path) or {}).get("blob")

        commit = repo.commits[sha]
        current = state(commit)
        while commit["parent"]:
            parent = repo.commits[commit["parent"]]
            if state(parent) != current:
                break
            commit = parent
        return {"id": commit["id"], "title": commit["title"], "date": commit["date"]}

    def _path_entry(self, repo, sha, path, expand) -> dict | None:
        files = repo.commits[sha]["files"]
        if path in files:
            out = self._file_entry(path, files[path])
        elif any(p.startswith(path + "/") for p in files):
            out = {"type": "directory", "oid": self._dir_oid(files, path), "size": 0, "path": path}
        else:
            return None
        if expand:
            out["lastCommit"] = self._last_commit(repo, sha, path, out["type"] == "directory")
        return out

    def _tree(self, repo, sha, base, recursive, expand) -> list[dict]:
        files = repo.commits[sha]["files"]
        base = base.strip("/")
        prefix = base + "/" if base else ""
        if base and base in files:
            raise HubError(404, "EntryNotFound", f"{base} is a file, not a folder")
        under = [p for p in files if p.startswith(prefix)]
        if base and not under:
            raise HubError(404, "EntryNotFound", f"{base} does not exist on \"{sha}\"")
        entries: dict[str, str] = {}
        for path in under:
            parts = path[len(prefix):].split("/")
            for depth in range(1, len(parts)):
                if recursive or depth == 1:
                    entries.setdefault(prefix + "/".join(parts[:depth]), "directory")
            if recursive or len(parts) == 1:
                entries[path] = "file"
        out = []
        for path in sorted(entries, key=lambda p: (entries[p] != "directory", p)):
            out.append(self._path_entry(repo, sha, path, expand))
        return out

    # -- faults -----------------------------------------------------------------------------------------------
    def _take_fault(self, kind, path) -> _Fault | None:
        with self.lock:
            for fault in self._faults:
                if fault.kind not in ("*", kind) or (fault.path and fault.path not in path):
                    continue
                if fault.skip > 0:
                    fault.skip -= 1
                    return None
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                self.faults_triggered.append({"kind": kind, "path": path, "status": fault.status})
                return fault
        return None

    # -- routing ----------------------------------------------------------------------------------------------
    def route(self, method, segs):
        """``(kind, handler, args)`` for a request, or ``("unknown", None, ())``."""
        n = len(segs)
        if n >= 2 and segs[0] == "api":
            if segs[1:] == ["repos", "create"] and method == "POST":
                return "create_repo", self.h_create_repo, ()
            if segs[1:] == ["repos", "delete"] and method == "DELETE":
                return "delete_repo", self.h_delete_repo, ()
            if segs[1:] == ["whoami-v2"] and method == "GET":
                return "whoami", self.h_whoami, ()
            if segs[1:] == ["validate-yaml"] and method == "POST":
                return "validate_yaml", self.h_validate_yaml, ()
            if n >= 4 and segs[1] in PLURAL_TO_TYPE:
                rtype, repo_id, rest = PLURAL_TO_TYPE[segs[1]], f"{segs[2]}/{segs[3]}", segs[4:]
                if not rest and method in ("GET", "HEAD"):
                    return "repo_info", self.h_repo_info, (rtype, repo_id, None)
                head, tail = (rest[0], rest[1:]) if rest else (None, [])
                if head == "revision" and tail and method in ("GET", "HEAD"):
                    return "repo_info", self.h_repo_info, (rtype, repo_id, "/".join(tail))
                if head == "preupload" and tail and method == "POST":
                    return "preupload", self.h_preupload, (rtype, repo_id, "/".join(tail))
                if head == "commit" and tail and method == "POST":
                    return "commit", self.h_commit, (rtype, repo_id, "/".join(tail))
                if head == "tree" and tail and method == "GET":
                    return "tree", self.h_tree, (rtype, repo_id, tail[0], "/".join(tail[1:]))
                if head == "paths-info" and tail and method == "POST":
                    return "paths_info", self.h_paths_info, (rtype, repo_id, "/".join(tail))
                if head == "commits" and tail and method == "GET":
                    return "commits", self.h_commits, (rtype, repo_id, "/".join(tail))
                if head == "refs" and not tail and method == "GET":
                    return "refs", self.h_refs, (rtype, repo_id)
                if head == "branch" and tail and method in ("POST", "DELETE"):
                    return "branch", self.h_branch, (rtype, repo_id, "/".join(tail))
                if head == "settings" and not tail and method == "PUT":
                    return "settings", self.h_settings, (rtype, repo_id)
        if n >= 7 and segs[0] == "_lfs" and segs[2] in PLURAL_TO_TYPE:
            rtype, repo_id, oid = PLURAL_TO_TYPE[segs[2]], f"{segs[3]}/{segs[4]}", segs[5]
            action = segs[1]
            if action == "upload" and method == "PUT":
                return "lfs_upload", self.h_lfs_upload, (rtype, repo_id, oid, segs[6])
            if action == "verify" and method == "POST":
                return "lfs_verify", self.h_lfs_verify, (rtype, repo_id, oid)
            if action == "download" and method in ("GET", "HEAD"):
                return "lfs_download", self.h_lfs_download, (rtype, repo_id, oid)
        if n >= 6 and segs[-4:] == ["info", "lfs", "objects", "batch"] and segs[-5].endswith(".git") \
                and method == "POST":
            prefix = segs[:-5]
            name = segs[-5][: -len(".git")]
            if len(prefix) == 2 and prefix[0] in ("datasets", "spaces"):
                return "lfs_batch", self.h_lfs_batch, (PLURAL_TO_TYPE[prefix[0]], f"{prefix[1]}/{name}")
            if len(prefix) == 1:
                return "lfs_batch", self.h_lfs_batch, ("model", f"{prefix[0]}/{name}")
        if method in ("GET", "HEAD"):
            kind = "resolve" if method == "GET" else "resolve_head"
            if n >= 6 and segs[0] in ("datasets", "spaces") and segs[3] == "resolve":
                return kind, self.h_resolve, (PLURAL_TO_TYPE[segs[0]], f"{segs[1]}/{segs[2]}", segs[4],
                                              "/".join(segs[5:]))
            if n >= 5 and segs[0] not in ("api", "datasets", "spaces") and segs[2] == "resolve":
                return kind, self.h_resolve, ("model", f"{segs[0]}/{segs[1]}", segs[3], "/".join(segs[4:]))
        return "unknown", None, ()

    # -- handlers: repos --------------------------------------------------------------------------------------
    def h_create_repo(self, req):
        if not req.had_auth:
            raise HubError(401, None, "Invalid credentials in Authorization header")
        payload = req.json()
        name, organization = payload.get("name"), payload.get("organization")
        rtype = payload.get("type") or "model"
        if rtype not in TYPE_TO_PLURAL or not name or "/" in name:
            raise HubError(400, None, "Invalid repo name or type")
        repo_id = f"{organization or self.user}/{name}"
        visibility = payload.get("visibility")
        private = visibility == "private" if visibility is not None else bool(payload.get("private", False))
        url = f"{self.endpoint}/{URL_PREFIX[rtype]}{repo_id}"
        with self.lock:
            if (rtype, repo_id) in self._repos:
                raise HubError(409, None, f"You already created this {rtype} repo", body={
                    "error": f"You already created this {rtype} repo", "url": url})
            self._create_repo(rtype, repo_id, private)
        return _Response.json({"url": url, "name": repo_id, "id": self._repos[(rtype, repo_id)].uid})

    def h_delete_repo(self, req):
        if not req.had_auth:
            raise HubError(401, None, "Invalid credentials in Authorization header")
        payload = req.json()
        rtype = payload.get("type") or "model"
        repo_id = f"{payload.get('organization') or self.user}/{payload.get('name')}"
        with self.lock:
            repo = self._get_repo(req, rtype, repo_id)
            del self._repos[(rtype, repo_id)]
            shutil.rmtree(repo.dir, ignore_errors=True)
        return _Response(200, b"")

    def h_settings(self, req, rtype, repo_id):
        with self.lock:
            repo = self._get_repo(req, rtype, repo_id, write=True)
            payload = req.json()
            if "private" in payload:
                repo.private = bool(payload["private"])
            if "visibility" in payload:
                repo.private = payload["visibility"] == "private"
            repo.save_meta()
        return _Response.json({"private": repo.private})

    def h_whoami(self, req):
        if not req.had_auth:
            raise HubError(401, None, "Invalid credentials in Authorization header")
        return _Response.json({"type": "user", "id": "0" * 24, "name": self.user, "fullname": "Test User",
                               "orgs": [], "auth": {"type": "access_token",
                                                    "accessToken": {"displayName": "tests", "role": "write"}}})

    def h_repo_info(self, req, rtype, repo_id, rev):
        with self.lock:
            repo = self._get_repo(req, rtype, repo_id)
            sha = self._resolve_rev(repo, rev)
            commit = repo.commits[sha]
            files = commit["files"]
            blobs = _truthy(req.query1("blobs", "false"))
            siblings = []
            for path, entry in sorted(files.items()):
                sibling = {"rfilename": path}
                if blobs:
                    sibling.update(size=entry["size"], blobId=entry["blob"])
                    if entry.get("lfs"):
                        lfs = entry["lfs"]
                        sibling["lfs"] = {"sha256": lfs["oid"], "size": lfs["size"],
                                          "pointerSize": lfs["pointerSize"]}
                siblings.append(sibling)
            data = {
                "_id": repo.uid, "id": repo.id, "author": repo.id.split("/")[0], "sha": sha,
                "lastModified": commit["date"], "createdAt": repo.created_at, "private": repo.private,
                "gated": False, "disabled": False, "downloads": 0, "likes": 0, "tags": [],
                "siblings": siblings, "usedStorage": sum(e["size"] for e in files.values()),
            }
            if rtype == "model":
                data["modelId"] = repo.id
            readme = self._read_text(repo, files, "README.md")
            if readme is not None:
                match = REGEX_YAML_BLOCK.search(readme)
                if match:
                    try:
                        card = _load_yaml(match.group(2))
                    except Exception:
                        card = None
                    if isinstance(card, dict):
                        data["cardData"] = card
        return _Response.json(data)

    def h_refs(self, req, rtype, repo_id):
        with self.lock:
            repo = self._get_repo(req, rtype, repo_id)
            branches = [{"name": b, "ref": f"refs/heads/{b}", "targetCommit": s}
                        for b, s in sorted(repo.refs.items()) if not b.startswith("refs/")]
            prs = [{"name": b.rsplit("/", 1)[-1], "ref": b, "targetCommit": s}
                   for b, s in sorted(repo.refs.items()) if b.startswith("refs/pr/")]
        data = {"branches": branches, "converts": [], "tags": []}
        if _truthy(req.query1("include_prs", "false")):
            data["pullRequests"] = prs
        return _Response.json(data)

    def h_branch(self, req, rtype, repo_id, branch):
        with self.lock:
            repo = self._get_repo(req, rtype, repo_id, write=True)
            if req.method == "DELETE":
                if branch not in repo.refs or branch == "main":
                    raise HubError(404 if branch not in repo.refs else 403, "RevisionNotFound"
                                   if branch not in repo.refs else None, f"Cannot delete branch {branch}")
                del repo.refs[branch]
                repo.save_meta()
                return _Response(200, b"")
            if branch in repo.refs:
                raise HubError(409, None, "Reference already exists")
            payload = req.json() if req.body else {}
            repo.refs[branch] = self._resolve_rev(repo, payload.get("startingPoint") or "main")
            repo.save_meta()
        return _Response.json({"success": True})

    def h_commits(self, req, rtype, repo_id, rev):
        with self.lock:
            repo = self._get_repo(req, rtype, repo_id)
            sha = self._resolve_rev(repo, rev)
            items = []
            while sha:
                commit = repo.commits[sha]
                items.append({"id": commit["id"], "title": commit["title"], "message": commit["message"],
                              "authors": [{"user": commit["author"]}], "date": commit["date"]})
                sha = commit["parent"]
        return self._paginated(req, items, 50)

    def _paginated(self, req, items, page_size):
        try:
            start = int(req.query1("cursor", "0") or 0)
        except ValueError:
            raise HubError(400, None, "Invalid cursor")
        page = items[start:start + page_size]
        headers = {}
        if start + page_size < len(items):
            params = [(k, v) for k, vs in req.query.items() if k != "cursor" for v in vs]
            params.append(("cursor", str(start + page_size)))
            headers["Link"] = f'<{self.endpoint}{req.raw_path}?{urllib.parse.urlencode(params)}>; rel="next"'
        return _Response.json(page, headers=headers)

    def h_tree(self, req, rtype, repo_id, rev, path):
        recursive = _truthy(req.query1("recursive", "false"))
        expand = _truthy(req.query1("expand", "false"))
        with self.lock:
            repo = self._get_repo(req, rtype, repo_id)
            sha = self._resolve_rev(repo, rev)
            items = self._tree(repo, sha, path, recursive, expand)
        return self._paginated(req, items, self.expand_page_size if expand else self.tree_page_size)

    def h_paths_info(self, req, rtype, repo_id, rev):
        if "json" in (req.headers.get("Content-Type") or ""):
            payload = req.json()
            paths, expand = payload.get("paths", []), _truthy(payload.get("expand", False))
        else:
            form = urllib.parse.parse_qs(req.body.decode(), keep_blank_values=True)
            paths, expand = form.get("paths", []), _truthy((form.get("expand") or ["false"])[0])
        if isinstance(paths, str):
            paths = [paths]
        with self.lock:
            repo = self._get_repo(req, rtype, repo_id)
            sha = self._resolve_rev(repo, rev)
            out, seen = [], set()
            for path in paths:
                path = path.strip("/")
                if path in seen:
                    continue
                seen.add(path)
                entry = self._path_entry(repo, sha, path, expand) if path else None
                if entry is not None:
                    out.append(entry)
        return _Response.json(out)

    # -- handlers: upload -------------------------------------------------------------------------------------
    def h_preupload(self, req, rtype, repo_id, rev):
        payload = req.json()
        with self.lock:
            repo = self._get_repo(req, rtype, repo_id, write=True)
            sha = self._resolve_rev(repo, rev)
            files = repo.commits[sha]["files"]
            gitignore = payload.get("gitIgnore")
            if gitignore is None:
                gitignore = self._read_text(repo, files, ".gitignore") or ""
            out = []
            for item in payload.get("files", []):
                path, size = item["path"], int(item.get("size", 0))
                sample = base64.b64decode(item.get("sample", "") or "")
                mode = "lfs" if self._is_lfs(repo, files, path, size, sample) else "regular"
                existing = files.get(path)
                oid = None
                if existing is not None:
                    oid = existing["lfs"]["oid"] if existing.get("lfs") else existing["blob"]
                out.append({"path": path, "uploadMode": mode, "shouldIgnore": _gitignored(gitignore, path),
                            "oid": oid})
        return _Response.json({"files": out, "commitOid": sha})

    def _sign(self, rtype, repo_id, oid, size) -> str:
        return hmac.new(self._secret, f"{rtype}:{repo_id}:{oid}:{size}".encode(), "sha256").hexdigest()[:32]

    def h_lfs_batch(self, req, rtype, repo_id):
        payload = req.json()
        operation = payload.get("operation")
        with self.lock:
            repo = self._get_repo(req, rtype, repo_id, write=operation == "upload")
        if operation not in ("upload", "download"):
            raise HubError(422, None, f"Unsupported operation {operation!r}")
        if payload.get("hash_algo", "sha256") != "sha256":
            raise HubError(422, None, "Only sha256 is supported")
        plural = TYPE_TO_PLURAL[rtype]
        objects = []
        for obj in payload.get("objects", []):
            oid, size = obj.get("oid"), obj.get("size")
            if not isinstance(oid, str) or not SHA256_RE.match(oid) or not isinstance(size, int) or size < 0:
                objects.append({"oid": str(oid), "size": size if isinstance(size, int) else 0,
                                "error": {"code": 422, "message": "Invalid oid or size"}})
                continue
            out = {"oid": oid, "size": size, "authenticated": True}
            exists = repo.has_lfs(oid, size)
            if operation == "upload" and not exists:
                sig = self._sign(rtype, repo_id, oid, size)
                out["actions"] = {
                    "upload": {"href": f"{self.endpoint}/_lfs/upload/{plural}/{repo_id}/{oid}/{size}?sig={sig}",
                               "header": {}, "expires_in": 86400},
                    "verify": {"href": f"{self.endpoint}/_lfs/verify/{plural}/{repo_id}/{oid}/{size}",
                               "header": {}, "expires_in": 86400},
                }
            elif operation == "download":
                if not exists:
                    out["error"] = {"code": 404, "message": "Object does not exist"}
                else:
                    out["actions"] = {"download": {
                        "href": f"{self.endpoint}/_lfs/download/{plural}/{repo_id}/{oid}/{size}", "header": {}}}
            objects.append(out)
        return _Response.json({"transfer": "basic", "objects": objects, "hash_algo": "sha256"},
                              content_type="application/vnd.git-lfs+json")

    def h_lfs_upload(self, req, rtype, repo_id, oid, size):
        with self.lock:
            repo = self._repos.get((rtype, repo_id))
        if repo is None:
            raise HubError(404, "RepoNotFound", "Repository not found")
        if not size.isdigit() or not hmac.compare_digest(req.query1("sig", ""),
                                                         self._sign(rtype, repo_id, oid, int(size))):
            raise HubError(403, None, "Invalid or missing upload signature")
        data = req.body
        if len(data) != int(size):
            raise HubError(400, None, f"Size mismatch: expected {size} bytes, received {len(data)}")
        if hashlib.sha256(data).hexdigest() != oid:
            raise HubError(400, None, "sha256 of the uploaded content does not match the object id")
        path = repo.lfs_path(oid)
        if not path.exists():
            _atomic_write(path, data)
        return _Response(200, b"", headers={"ETag": f'"{hashlib.md5(data).hexdigest()}"'})

    def h_lfs_verify(self, req, rtype, repo_id, oid):
        with self.lock:
            repo = self._get_repo(req, rtype, repo_id, write=True)
        payload = req.json()
        if payload.get("oid") != oid or not repo.has_lfs(oid, payload.get("size")):
            raise HubError(404, None, f"Object {oid} not found or size mismatch")
        return _Response.json({"success": True})

    def h_lfs_download(self, req, rtype, repo_id, oid):
        with self.lock:
            repo = self._get_repo(req, rtype, repo_id)
        if not repo.has_lfs(oid):
            raise HubError(404, None, "Object does not exist")
        path = repo.lfs_path(oid)
        return _Response(200, file=(path, 0, path.stat().st_size), content_type="application/octet-stream")

    def h_commit(self, req, rtype, repo_id, rev):
        lines = [line for line in req.body.split(b"\n") if line.strip()]
        try:
            items = [json.loads(line) for line in lines]
        except ValueError:
            raise HubError(400, None, "Invalid NDJSON payload")
        if not items or items[0].get("key") != "header":
            raise HubError(400, None, "The first line of the payload must be the commit header")
        header = items[0].get("value") or {}
        summary = header.get("summary")
        if not isinstance(summary, str) or not summary.strip():
            raise HubError(400, None, "Commit summary is required")
        create_pr = _truthy(req.query1("create_pr", "false"))
        with self.lock:
            repo = self._get_repo(req, rtype, repo_id, write=True)
            if rev.startswith("refs/heads/"):
                rev = rev[len("refs/heads/"):]
            if rev not in repo.refs:
                if SHA1_RE.match(rev) and rev in repo.commits and not create_pr:
                    raise HubError(400, None, "Cannot commit to a commit sha, use a branch")
                raise HubError(404, "RevisionNotFound", f"Invalid rev id: {rev}")
            head = repo.refs[rev]
            parent_commit = header.get("parentCommit")
            if parent_commit is not None and parent_commit != head:
                raise HubError(412, None, "A commit has happened since. Please refresh and try again.")
            files = dict(repo.commits[head]["files"])
            for item in items[1:]:
                key, value = item.get("key"), item.get("value") or {}
                path = value.get("path", "")
                if key in ("file", "lfsFile", "deletedFile", "deletedFolder"):
                    self._check_path(path.rstrip("/") if key == "deletedFolder" else path)
                if key == "file":
                    content = value.get("content", "")
                    if value.get("encoding", "base64") == "base64":
                        try:
                            data = base64.b64decode(content, validate=True)
                        except ValueError:
                            raise HubError(400, None, f"Invalid base64 content for {path}")
                    else:
                        data = content.encode()
                    if path == "README.md":
                        errors, _ = validate_card_metadata(data.decode("utf-8", errors="replace"), rtype)
                        if errors:
                            raise HubError(400, None, "Invalid metadata in README.md.\n" + "\n".join(errors))
                    files[path] = self._store_blob(repo, data)
                elif key == "lfsFile":
                    if value.get("algo", "sha256") != "sha256":
                        raise HubError(400, None, "Only sha256 LFS objects are supported")
                    oid = value.get("oid", "")
                    if not SHA256_RE.match(oid) or not repo.has_lfs(oid):
                        raise HubError(400, None, f"Your push was rejected because an LFS pointer pointed to a "
                                                  f"file that does not exist: {path} ({oid})")
                    size = repo.lfs_path(oid).stat().st_size
                    if value.get("size") is not None and int(value["size"]) != size:
                        raise HubError(400, None, f"LFS object size mismatch for {path}")
                    pointer = lfs_pointer(oid, size)
                    files[path] = {"size": size, "blob": git_blob_sha(pointer), "sha256": oid,
                                   "lfs": {"oid": oid, "size": size, "pointerSize": len(pointer)}}
                elif key == "deletedFile":
                    if path not in files:
                        raise HubError(404, "EntryNotFound", f"A file with this name doesn't exist: {path}")
                    del files[path]
                elif key == "deletedFolder":
                    prefix = path.rstrip("/") + "/"
                    doomed = [p for p in files if p.startswith(prefix)]
                    if not doomed:
                        raise HubError(404, "EntryNotFound", f"A folder with this name doesn't exist: {path}")
                    for p in doomed:
                        del files[p]
                else:
                    raise HubError(400, None, f"Unknown commit operation {key!r}")
            pr_url = None
            branch = rev
            if create_pr:
                repo.pr_count += 1
                branch = f"refs/pr/{repo.pr_count}"
                pr_url = f"{self.endpoint}/{URL_PREFIX[rtype]}{repo_id}/discussions/{repo.pr_count}"
            commit = self._add_commit(repo, branch, head, summary, header.get("description", "") or "", files)
        return _Response.json({
            "success": True, "commitOid": commit["id"], "hookOutput": "", "pullRequestUrl": pr_url,
            "commitUrl": f"{self.endpoint}/{URL_PREFIX[rtype]}{repo_id}/commit/{commit['id']}",
        })

    @staticmethod
    def _check_path(path):
        parts = path.split("/")
        if not path or path.startswith("/") or any(p in ("", ".", "..") for p in parts) or parts[0] == ".git":
            raise HubError(400, None, f"Invalid path in repo: {path!r}")

    # -- handlers: download -----------------------------------------------------------------------------------
    def h_resolve(self, req, rtype, repo_id, rev, path):
        with self.lock:
            repo = self._get_repo(req, rtype, repo_id)
            sha = self._resolve_rev(repo, rev)
            entry = repo.commits[sha]["files"].get(path)
            if entry is None:
                raise HubError(404, "EntryNotFound", f"Entry not found: {path}", headers={"X-Repo-Commit": sha})
            file_path = repo.entry_file(entry)
        size = entry["size"]
        headers = {"X-Repo-Commit": sha, "Accept-Ranges": "bytes", "Cache-Control": "no-cache"}
        if entry.get("lfs"):
            etag = f'"{entry["lfs"]["oid"]}"'
            headers.update({"ETag": etag, "X-Linked-Etag": etag, "X-Linked-Size": str(size)})
        else:
            headers["ETag"] = f'"{entry["blob"]}"'
        start, end, status = 0, size - 1, 200
        range_header = req.headers.get("Range")
        if range_header:
            parsed = _parse_range(range_header, size)
            if parsed == "invalid":
                raise HubError(416, None, "Requested range not satisfiable",
                               headers={**headers, "Content-Range": f"bytes */{size}"})
            if parsed is not None:
                start, end = parsed
                status = 206
                headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        return _Response(status, headers=headers, file=(file_path, start, max(end - start + 1, 0)),
                         content_type="application/octet-stream")

    def h_validate_yaml(self, req):
        payload = req.json()
        content = payload.get("content")
        if not isinstance(content, str):
            raise HubError(400, None, '"content" is required')
        errors, warnings = validate_card_metadata(content, payload.get("repoType") or "model")
        accept = req.headers.get("Accept") or ""
        status = 400 if errors else 200
        if "text/plain" in accept and "json" not in accept:
            text = "\n".join(errors) if errors else "OK"
            return _Response(status, text.encode(), content_type="text/plain; charset=utf-8")
        return _Response.json({"errors": [{"message": m} for m in errors],
                               "warnings": [{"message": m, "type": "warning"} for m in warnings]}, status)


def _parse_range(value: str, size: int):
    """``(start, end)`` inclusive, ``None`` to ignore the header (e.g. several ranges) or ``"invalid"`` (416)."""
    match = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", value)
    if not match:
        return None
    first, last = match.groups()
    if first == "" and last == "":
        return None
    if first == "":
        length = int(last)
        if length == 0 or size == 0:
            return "invalid"
        return max(size - length, 0), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if start >= size or end < start:
        return "invalid"
    return start, min(end, size - 1)


class _Request:
    def __init__(self, method, raw_path, query, headers, body, had_auth):
        self.method, self.raw_path, self.query = method, raw_path, query
        self.headers, self.body, self.had_auth = headers, body, had_auth

    def query1(self, key, default=None):
        values = self.query.get(key)
        return values[-1] if values else default

    def json(self):
        if not self.body:
            return {}
        try:
            data = json.loads(self.body)
        except ValueError:
            raise HubError(400, None, "Invalid JSON body")
        if not isinstance(data, dict):
            raise HubError(400, None, "Expected a JSON object")
        return data


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeHub/1.0"
    server: HubServer

    def setup(self):
        super().setup()
        # Headers and body go out in separate writes: without TCP_NODELAY, Nagle + delayed ACK add ~40 ms per answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("[fake-hub] " + (fmt % args) + "\n")

    def do_GET(self):
        self._handle("GET")

    def do_HEAD(self):
        self._handle("HEAD")

    def do_POST(self):
        self._handle("POST")

    def do_PUT(self):
        self._handle("PUT")

    def do_DELETE(self):
        self._handle("DELETE")

    def do_PATCH(self):
        self._handle("PATCH")

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size_line = self.rfile.readline()
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self, method):
        server = self.server
        split = urllib.parse.urlsplit(self.path)
        raw_path = split.path
        segs = [urllib.parse.unquote(s) for s in raw_path.strip("/").split("/")] if raw_path.strip("/") else []
        query = urllib.parse.parse_qs(split.query, keep_blank_values=True)
        auth = self.headers.get("Authorization") or ""
        had_auth = auth.lower().startswith("bearer ") and bool(auth[7:].strip())
        body = self._read_body()
        kind, handler, args = server.route(method, segs)
        record = {"method": method, "path": raw_path, "query": split.query, "had_auth": had_auth, "kind": kind,
                  "range": self.headers.get("Range"), "status": None}
        with server.lock:
            server.requests.append((method, raw_path, had_auth))
            server.request_log.append(record)
        if handler is None:
            with server.lock:
                server.unknown_requests.append((method, self.path))
            sys.stderr.write(f"[fake-hub] unknown request: {method} {self.path}\n")
        fault = server._take_fault(kind, raw_path)
        if fault is not None and fault.status == "drop" and kind != "resolve":
            record["status"] = "drop"
            self._drop()
            return
        req = _Request(method, raw_path, query, self.headers, body, had_auth)
        try:
            if fault is not None and fault.status != "drop":
                raise HubError(fault.status, fault.error_code, fault.message)
            if handler is None:
                raise HubError(404, "EndpointNotFound", f"Unknown endpoint: {method} {raw_path}")
            response = handler(req, *args)
        except HubError as err:
            body_data = err.body if err.body is not None else {"error": err.message}
            headers = dict(err.headers)
            if err.code:
                headers["X-Error-Code"] = err.code
            if err.message:
                headers["X-Error-Message"] = err.message.splitlines()[0].encode("ascii", "replace").decode()
            response = _Response.json(body_data, err.status, headers)
        except Exception:
            tb = traceback.format_exc()
            with server.lock:
                server.errors.append(tb)
            sys.stderr.write(f"[fake-hub] internal error on {method} {self.path}\n{tb}")
            response = _Response.json({"error": "Internal Error (fake hub)"}, 500)
        record["status"] = response.status
        self._send(method, response, drop=fault is not None and fault.status == "drop")

    def _drop(self):
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(2)
        except OSError:
            pass

    def _send(self, method, response, drop=False):
        length = response.file[2] if response.file is not None else len(response.body)
        self.send_response(response.status)
        for key, value in response.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        if method == "HEAD":
            return
        limit = length // 2 if drop else length
        if response.file is not None:
            path, start, _ = response.file
            self.wfile.flush()
            with open(path, "rb") as f:
                if limit > 0:  # count=0 would mean "to the end of the file"
                    # the kernel copies file to socket (os.sendfile): the server's CPU stays out of the client's
                    # measurements, as the real Hub's does
                    self.connection.sendfile(f, offset=start, count=limit)
        else:
            self.wfile.write(response.body[:limit])
        if drop:
            self._drop()


def start_hub_server(root, host="127.0.0.1", port=0, **kwargs) -> HubServer:
    """Start a :class:`HubServer` storing repositories under ``root``, serving in a daemon thread."""
    return HubServer(root, (host, port), **kwargs).start()


# -- pytest integration (only when pytest is importable; no side effects at import) ------------------------------
_SESSION_SERVER: HubServer | None = None


def reserve_session_hub_server(root) -> HubServer:
    """Bind (once) the server shared by a whole test session, without serving yet; ``conftest.py`` calls this
    before importing ``datasets`` so that ``HF_ENDPOINT`` can point at it. The ``hub_server`` fixture starts it
    when a test first needs it; until then connections to it are refused (a test that forgot the fixture fails
    at once)."""
    global _SESSION_SERVER
    if _SESSION_SERVER is None:
        _SESSION_SERVER = HubServer(root, listen=False)
    return _SESSION_SERVER


def start_session_hub_server(root) -> HubServer:
    """Reserve (once) and start the session's server."""
    server = reserve_session_hub_server(root)
    if not server.serving:
        server.start()
    return server


try:
    import pytest
except ImportError:  # pragma: no cover
    pytest = None

if pytest is not None:

    @pytest.fixture(scope="session")
    def hub_server():
        """The session's fake Hub (``HF_ENDPOINT`` points at it), serving from the first test that asks for it.
        Use unique repo names, e.g. ``hub_repo_id``."""
        if _SESSION_SERVER is None:
            raise RuntimeError("the session Hub server was not reserved: conftest.py must call "
                               "reserve_session_hub_server() before importing datasets/huggingface_hub")
        if not _SESSION_SERVER.serving:
            _SESSION_SERVER.start()
        return _SESSION_SERVER

    @pytest.fixture
    def hub_repo_id(hub_server, request):
        """A fresh, unique ``tester/<test name>-<uuid>`` repo id; clears leftover injected faults afterwards."""
        name = re.sub(r"[^A-Za-z0-9._-]+", "-", request.node.name)[:60].strip("-.")
        yield f"tester/{name}-{uuid.uuid4().hex[:8]}"
        hub_server.clear_faults()


if __name__ == "__main__":  # manual use: python tests/fakes/hub_server.py ROOT [PORT]
    _root = sys.argv[1] if len(sys.argv) > 1 else "./fake-hub"
    _server = HubServer(_root, ("127.0.0.1", int(sys.argv[2]) if len(sys.argv) > 2 else 0), verbose=True)
    print(f"fake Hub serving {_root} at {_server.endpoint}", flush=True)
    _server.serve_forever()
