"""Stock ``datasets`` / ``huggingface_hub`` flows against the fake Hub of ``tests/fakes/hub_server.py``.

Nothing here uses medmnist_plus code: these tests pin down that the fake Hub speaks the real protocol (upload through
preupload + LFS + NDJSON commit, tree/paths-info listings, /resolve with ranges, validate-yaml) so that publishing
tests can rely on it.
"""

import hashlib
import io
import uuid

import huggingface_hub.constants
import numpy as np
import PIL.Image
import pytest
import yaml
from datasets import (
    Array3D,
    ClassLabel,
    Dataset,
    DatasetDict,
    Features,
    Image,
    List,
    Value,
    get_dataset_config_names,
    load_dataset,
)
from huggingface_hub import (
    CommitOperationAdd,
    CommitOperationDelete,
    DatasetCard,
    HfApi,
    HfFileSystem,
    get_hf_file_metadata,
    get_session,
    hf_hub_download,
    hf_hub_url,
)
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from tests.fakes.hub_server import REGEX_YAML_BLOCK, HubServer, git_blob_sha, validate_card_metadata

pytestmark = pytest.mark.slow  # every test here uploads to the test Hub (push_to_hub, HfApi)

# huggingface_hub's LFS PUT passes a file object as `data=`, which httpx2 flags; that is the library's business.

SIZES = {"train": 24, "validation": 5, "test": 7}
SMALL_SIZES = {"train": 6, "validation": 2, "test": 3}
SHARD = 3_000  # bytes: a few shards for the train split of every config below


def _png(pixels):
    buffer = io.BytesIO()
    PIL.Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def make_config(kind, seed, sizes=SIZES):
    """A DatasetDict of one kind ("gray", "rgb", "volume", "multilabel") and the arrays it was built from."""
    rng = np.random.default_rng(seed)
    column = "volume" if kind == "volume" else "image"
    if kind == "volume":
        value_feature = Array3D((8, 8, 8), "uint8")
    else:
        value_feature = Image()
    if kind == "multilabel":
        label_feature = List(Value("uint8"), length=14)
    else:
        label_feature = ClassLabel(names=[f"class_{i}" for i in range(4)])
    features = Features({"index": Value("int64"), column: value_feature, "label": label_feature})
    splits, expected = {}, {}
    for split, n in sizes.items():
        shape = {"rgb": (12, 12, 3), "volume": (8, 8, 8)}.get(kind, (12, 12))
        pixels = rng.integers(0, 256, (n, *shape), dtype=np.uint8)
        if kind == "multilabel":
            labels = rng.integers(0, 2, (n, 14)).astype(np.uint8).tolist()
        else:
            labels = rng.integers(0, 4, n).tolist()
        values = [p for p in pixels] if kind == "volume" else [{"bytes": _png(p), "path": None} for p in pixels]
        splits[split] = Dataset.from_dict(
            {"index": list(range(n)), column: values, "label": labels}, features=features
        )
        expected[split] = {"pixels": pixels, "label": labels}
    return DatasetDict(splits), expected, column


def assert_split(rows, expected, column):
    rows = list(rows)
    assert [row["index"] for row in rows] == list(range(len(expected["label"])))
    for row in rows:
        i = row["index"]
        got, want = np.asarray(row[column]), expected["pixels"][i]
        assert got.shape == want.shape, i
        if column == "image":
            assert got.dtype == np.uint8, i
        assert np.array_equal(got, want), i
        assert row["label"] == expected["label"][i], i


def assert_loads_exactly(repo_id, config, expected, column):
    dataset = load_dataset(repo_id, config)
    assert sorted(dataset) == sorted(expected)
    for split in expected:
        assert_split(dataset[split], expected[split], column)
    streamed = load_dataset(repo_id, config, streaming=True)
    assert sorted(streamed) == sorted(expected)
    for split in expected:
        assert_split(streamed[split], expected[split], column)


def readme_metadata(server, repo_id):
    readme = server.files(repo_id)["README.md"].decode()
    assert validate_card_metadata(readme, "dataset") == ([], [])
    return yaml.safe_load(REGEX_YAML_BLOCK.search(readme).group(2))


def config_names_in_readme(server, repo_id):
    return sorted(c["config_name"] for c in readme_metadata(server, repo_id).get("configs", []))


def requests_since(server, start, kind=None, method=None):
    return [r for r in server.request_log[start:]
            if (kind is None or r["kind"] == kind) and (method is None or r["method"] == method)]


@pytest.fixture(autouse=True)
def no_server_surprises(hub_server):
    """No request the fake Hub does not know, no server-side exception, during each test."""
    errors, unknown = len(hub_server.errors), len(hub_server.unknown_requests)
    yield
    assert hub_server.errors[errors:] == []
    assert hub_server.unknown_requests[unknown:] == []


# -- 1. several configs, several shards, map-style and streaming -------------------------------------------------
KINDS = ("gray", "rgb", "volume", "multilabel")


@pytest.fixture(scope="module")
def published(hub_server):
    repo_id = f"tester/multi-{uuid.uuid4().hex[:8]}"
    errors, unknown = len(hub_server.errors), len(hub_server.unknown_requests)
    expected = {}
    for seed, kind in enumerate(KINDS):
        dataset_dict, arrays, column = make_config(kind, seed)
        dataset_dict.push_to_hub(repo_id, config_name=kind, max_shard_size=SHARD)
        expected[kind] = (arrays, column)
    assert hub_server.errors[errors:] == [] and hub_server.unknown_requests[unknown:] == []
    return repo_id, expected


def test_push_several_configs_lists_them_and_shards_them(hub_server, published):
    repo_id, expected = published
    assert sorted(get_dataset_config_names(repo_id)) == sorted(KINDS)
    paths = hub_server.paths(repo_id)
    for kind in KINDS:
        train = [p for p in paths if p.startswith(f"{kind}/train-")]
        assert len(train) > 1, (kind, paths)
        assert all(p.endswith(f"-of-{len(train):05d}.parquet") for p in train)
        # Parquet shards went through LFS, the card is a regular git file.
        assert hub_server.file_entry(repo_id, train[0])["lfs"] is not None
    assert hub_server.file_entry(repo_id, "README.md")["lfs"] is None

    metadata = readme_metadata(hub_server, repo_id)
    assert sorted(c["config_name"] for c in metadata["configs"]) == sorted(KINDS)
    for config in metadata["configs"]:
        kind = config["config_name"]
        assert {f["split"]: f["path"] for f in config["data_files"]} == {s: f"{kind}/{s}-*" for s in SIZES}
    infos = {info["config_name"]: info for info in metadata["dataset_info"]}
    assert {s["name"]: s["num_examples"] for s in infos["volume"]["splits"]} == SIZES
    DatasetCard(hub_server.files(repo_id)["README.md"].decode()).validate()  # the Hub accepts the card


@pytest.mark.parametrize("kind", KINDS)
def test_every_config_loads_back_bit_exact(hub_server, published, kind):
    repo_id, expected = published
    arrays, column = expected[kind]
    assert_loads_exactly(repo_id, kind, arrays, column)
    features = load_dataset(repo_id, kind, split="test").features
    if kind == "volume":
        assert features["volume"] == Array3D((8, 8, 8), "uint8")
    if kind == "multilabel":
        assert features["label"] == List(Value("uint8"), length=14)


# -- 2. re-push with fewer shards --------------------------------------------------------------------------------
def test_repush_with_fewer_shards_leaves_no_stale_files(hub_server, hub_repo_id):
    first, _, _ = make_config("gray", 10)
    first.push_to_hub(hub_repo_id, config_name="a", max_shard_size=SHARD, private=True, token="hf_other_fake_token")
    other, other_arrays, column = make_config("rgb", 11)
    other.push_to_hub(hub_repo_id, config_name="b", max_shard_size=SHARD)
    before = hub_server.files(hub_repo_id)
    assert len([p for p in before if p.startswith("a/train-")]) > 1
    head_before = hub_server.head(hub_repo_id)

    smaller, small_arrays, _ = make_config("gray", 12, SMALL_SIZES)
    smaller.push_to_hub(hub_repo_id, config_name="a", max_shard_size="1MB")

    after = hub_server.files(hub_repo_id)
    assert sorted(p for p in after if p.startswith("a/")) == [f"a/{s}-00000-of-00001.parquet" for s in sorted(SIZES)]
    assert {p: c for p, c in after.items() if p.startswith("b/")} == {
        p: c for p, c in before.items() if p.startswith("b/")}
    # The new shards, the card and the deletions of the stale shards are one commit.
    assert hub_server.commits(hub_repo_id)[1]["id"] == head_before
    infos = {i["config_name"]: i for i in readme_metadata(hub_server, hub_repo_id)["dataset_info"]}
    assert {s["name"]: s["num_examples"] for s in infos["a"]["splits"]} == SMALL_SIZES
    assert {s["name"]: s["num_examples"] for s in infos["b"]["splits"]} == SIZES
    assert HfApi().dataset_info(hub_repo_id).private is True
    assert_loads_exactly(hub_repo_id, "a", small_arrays, "image")
    assert_loads_exactly(hub_repo_id, "b", other_arrays, column)


# -- 3. interrupted pushes ---------------------------------------------------------------------------------------
@pytest.fixture
def base_repo(hub_server, hub_repo_id):
    dataset_dict, _, _ = make_config("gray", 20, SMALL_SIZES)
    dataset_dict.push_to_hub(hub_repo_id, config_name="base")
    return hub_repo_id


def assert_untouched(server, repo_id, head):
    assert server.head(repo_id) == head
    assert not [p for p in server.paths(repo_id) if p.startswith("new/")]
    assert config_names_in_readme(server, repo_id) == ["base"]
    assert get_dataset_config_names(repo_id) == ["base"]


def test_push_interrupted_by_a_failed_lfs_upload_can_be_rerun(hub_server, base_repo):
    head = hub_server.head(base_repo)
    dataset_dict, arrays, column = make_config("rgb", 21)
    hub_server.fail_next("lfs_upload", skip=1, status=403)  # the 2nd shard's PUT fails, not retried
    with pytest.raises(RuntimeError, match="Error while uploading 'new/"):
        dataset_dict.push_to_hub(base_repo, config_name="new", max_shard_size=SHARD)
    assert [f["kind"] for f in hub_server.faults_triggered[-1:]] == ["lfs_upload"]
    assert_untouched(hub_server, base_repo, head)

    start = len(hub_server.request_log)
    dataset_dict.push_to_hub(base_repo, config_name="new", max_shard_size=SHARD)
    shards = [p for p in hub_server.paths(base_repo) if p.startswith("new/")]
    # The shard stored before the failure is not sent again: the LFS batch answers it without an upload action.
    assert len(requests_since(hub_server, start, "lfs_upload")) == len(shards) - 1
    assert config_names_in_readme(hub_server, base_repo) == ["base", "new"]
    assert_loads_exactly(base_repo, "new", arrays, column)


def test_push_interrupted_by_a_failed_commit_can_be_rerun(hub_server, base_repo):
    head = hub_server.head(base_repo)
    dataset_dict, arrays, column = make_config("multilabel", 22)
    hub_server.fail_next("commit", status=500)
    with pytest.raises(HfHubHTTPError) as info:
        dataset_dict.push_to_hub(base_repo, config_name="new", max_shard_size=SHARD)
    assert info.value.response.status_code == 500
    assert_untouched(hub_server, base_repo, head)

    start = len(hub_server.request_log)
    dataset_dict.push_to_hub(base_repo, config_name="new", max_shard_size=SHARD)
    assert requests_since(hub_server, start, "lfs_upload") == []  # every shard was already stored
    assert len(requests_since(hub_server, start, "commit")) == 1
    assert config_names_in_readme(hub_server, base_repo) == ["base", "new"]
    assert_loads_exactly(base_repo, "new", arrays, column)


def test_transient_upload_error_is_retried_by_the_client(hub_server, base_repo):
    dataset_dict, arrays, column = make_config("volume", 23, SMALL_SIZES)
    start = len(hub_server.request_log)
    hub_server.fail_next("lfs_upload", status=503)
    dataset_dict.push_to_hub(base_repo, config_name="new")
    puts = requests_since(hub_server, start, "lfs_upload")
    assert puts[0]["status"] == 503 and puts[1]["status"] == 200 and puts[0]["path"] == puts[1]["path"]
    assert_loads_exactly(base_repo, "new", arrays, column)


def test_stale_parent_commit_is_rejected_with_412(hub_server, base_repo):
    api = HfApi()
    stale = hub_server.head(base_repo)
    api.upload_file(path_or_fileobj=b"one", path_in_repo="one.txt", repo_id=base_repo, repo_type="dataset")
    with pytest.raises(HfHubHTTPError) as info:
        api.create_commit(base_repo, [CommitOperationAdd("two.txt", b"two")], commit_message="late",
                          repo_type="dataset", parent_commit=stale)
    assert info.value.response.status_code == 412
    assert "two.txt" not in hub_server.paths(base_repo)


# -- 4. downloads ------------------------------------------------------------------------------------------------
def test_hf_hub_download_ranges_resume_and_errors(hub_server, hub_repo_id, tmp_path, monkeypatch):
    api = HfApi(endpoint=hub_server.endpoint)
    api.create_repo(hub_repo_id, repo_type="dataset")
    payload = np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8).tobytes()
    api.upload_file(path_or_fileobj=payload, path_in_repo="blobs/big.bin", repo_id=hub_repo_id, repo_type="dataset")
    api.upload_file(path_or_fileobj=b"small text\n", path_in_repo="notes.txt", repo_id=hub_repo_id,
                    repo_type="dataset")
    head = hub_server.head(hub_repo_id)
    assert hub_server.file_entry(hub_repo_id, "blobs/big.bin")["lfs"]["oid"] == hashlib.sha256(payload).hexdigest()

    # HEAD metadata, as the Hub sends it.
    url = hf_hub_url(hub_repo_id, "blobs/big.bin", repo_type="dataset")
    meta = get_hf_file_metadata(url)
    assert (meta.commit_hash, meta.size) == (head, len(payload))
    assert meta.etag == hub_server.file_entry(hub_repo_id, "blobs/big.bin")["lfs"]["oid"]
    text_meta = get_hf_file_metadata(hf_hub_url(hub_repo_id, "notes.txt", repo_type="dataset"))
    assert text_meta.etag == git_blob_sha(b"small text\n")

    # Explicit ranges.
    response = get_session().get(url, headers={"Range": "bytes=10-19"})
    assert response.status_code == 206 and response.content == payload[10:20]
    assert response.headers["Content-Range"] == f"bytes 10-19/{len(payload)}"
    assert response.headers["X-Linked-Size"] == str(len(payload)) and response.headers["X-Repo-Commit"] == head
    assert get_session().get(url, headers={"Range": "bytes=-5"}).content == payload[-5:]
    assert get_session().get(url, headers={"Range": f"bytes={len(payload)}-"}).status_code == 416
    with HfFileSystem().open(f"datasets/{hub_repo_id}/blobs/big.bin", "rb", block_size=1000) as f:
        f.seek(123_456)
        assert f.read(100) == payload[123_456:123_556]
    assert any((r["range"] or "").startswith("bytes=123456-") and r["status"] == 206 for r in hub_server.request_log)

    # A connection cut half-way through the body: hf_hub_download resumes with a Range request from the last
    # complete chunk it wrote (chunks are 10 MB by default: shrink them rather than upload a 20 MB file).
    monkeypatch.setattr(huggingface_hub.constants, "DOWNLOAD_CHUNK_SIZE", 64 * 1024)
    start = len(hub_server.request_log)
    hub_server.fail_next("resolve", status="drop", path="big.bin")
    local = hf_hub_download(hub_repo_id, "blobs/big.bin", repo_type="dataset", cache_dir=tmp_path / "cache")
    assert open(local, "rb").read() == payload
    gets = requests_since(hub_server, start, "resolve", "GET")
    assert [g["status"] for g in gets] == [200, 206]
    resumed_at = int(gets[1]["range"].removeprefix("bytes=").removesuffix("-"))
    assert 0 < resumed_at <= len(payload) // 2

    assert hf_hub_download(hub_repo_id, "notes.txt", repo_type="dataset", revision=head,
                           cache_dir=tmp_path / "cache", force_download=True)
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(hub_repo_id, "missing.txt", repo_type="dataset", cache_dir=tmp_path / "cache")
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(hub_repo_id, "notes.txt", repo_type="dataset", revision="nope", cache_dir=tmp_path / "c2")
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download(f"tester/missing-{uuid.uuid4().hex}", "notes.txt", repo_type="dataset",
                        cache_dir=tmp_path / "cache")


# -- 5. dataset card validation ----------------------------------------------------------------------------------
def test_dataset_card_validate_uses_validate_yaml(hub_server, hub_repo_id):
    start = len(hub_server.request_log)
    DatasetCard(
        "---\nlicense: mit\npretty_name: Tiny\nconfigs:\n- config_name: a\n  data_files:\n  - split: train\n"
        "    path: a/train-*\n---\n# Tiny\n"
    ).validate()
    assert [(r["method"], r["path"], r["status"]) for r in requests_since(hub_server, start, "validate_yaml")] == [
        ("POST", "/api/validate-yaml", 200)]

    with pytest.raises(ValueError, match="config_name"):
        DatasetCard("---\nconfigs:\n- data_files: a/*.parquet\n---\n# Broken\n").validate()
    with pytest.raises(ValueError, match="license"):
        DatasetCard("---\nlicense:\n  name: mit\n---\n").validate()

    # YAML that does not even parse is refused by the Hub before anything is committed.
    api = HfApi()
    api.create_repo(hub_repo_id, repo_type="dataset")
    with pytest.raises(ValueError, match="Invalid metadata in README.md"):
        api.upload_file(path_or_fileobj=b"---\nlicense: [mit\n---\n# Broken\n", path_in_repo="README.md",
                        repo_id=hub_repo_id, repo_type="dataset")
    assert "README.md" not in hub_server.paths(hub_repo_id)


# -- HfApi surface, auth and bookkeeping -------------------------------------------------------------------------
def test_hf_api_repo_tree_commits_and_auth(hub_server, hub_repo_id, tmp_path):
    api = HfApi(endpoint=hub_server.endpoint)
    anonymous = HfApi(endpoint=hub_server.endpoint, token=False)
    url = api.create_repo(hub_repo_id, repo_type="dataset")
    assert url.repo_id == hub_repo_id and url.repo_type == "dataset"
    api.create_repo(hub_repo_id, repo_type="dataset", exist_ok=True)
    with pytest.raises(HfHubHTTPError) as info:
        api.create_repo(hub_repo_id, repo_type="dataset")
    assert info.value.response.status_code == 409

    first = api.upload_file(path_or_fileobj=b"hello", path_in_repo="docs/hello.txt", repo_id=hub_repo_id,
                            repo_type="dataset")
    blob = bytes(range(256)) * 8
    api.create_commit(hub_repo_id, [CommitOperationAdd("data/x.bin", blob), CommitOperationAdd("data/y.txt", b"y"),
                                    CommitOperationAdd("docs/deep/z.txt", b"z")],
                      commit_message="more", repo_type="dataset")
    info = api.dataset_info(hub_repo_id, files_metadata=True)
    assert info.sha == hub_server.head(hub_repo_id) and info.private is False
    siblings = {s.rfilename: s for s in info.siblings}
    assert sorted(siblings) == hub_server.paths(hub_repo_id) == api.list_repo_files(hub_repo_id, repo_type="dataset")
    assert siblings["data/x.bin"].lfs.sha256 == hashlib.sha256(blob).hexdigest()
    assert siblings["docs/hello.txt"].lfs is None and siblings["docs/hello.txt"].blob_id == git_blob_sha(b"hello")
    old = api.repo_info(hub_repo_id, repo_type="dataset", revision=first.oid)
    assert sorted(s.rfilename for s in old.siblings) == [".gitattributes", "docs/hello.txt"]

    # Tree listing, paginated through the Link header.
    hub_server.tree_page_size = 2
    try:
        start = len(hub_server.request_log)
        tree = list(api.list_repo_tree(hub_repo_id, repo_type="dataset", recursive=True))
        assert len(requests_since(hub_server, start, "tree")) > 1
    finally:
        hub_server.tree_page_size = 1000
    assert sorted(e.path for e in tree) == sorted(hub_server.paths(hub_repo_id) + ["data", "docs", "docs/deep"])
    top = {e.path: type(e).__name__ for e in api.list_repo_tree(hub_repo_id, repo_type="dataset", expand=True)}
    assert top == {"data": "RepoFolder", "docs": "RepoFolder", ".gitattributes": "RepoFile"}
    expanded = list(api.list_repo_tree(hub_repo_id, "docs", repo_type="dataset", expand=True))
    assert {e.path: e.last_commit.title for e in expanded} == {"docs/deep": "more", "docs/hello.txt":
                                                               "Upload docs/hello.txt with huggingface_hub"}
    infos = api.get_paths_info(hub_repo_id, ["docs/hello.txt", "data", "missing"], repo_type="dataset")
    assert [(type(i).__name__, i.path) for i in infos] == [("RepoFile", "docs/hello.txt"), ("RepoFolder", "data")]

    # Deletions: a file and a folder in one commit, then delete_file; deleting a missing file is EntryNotFound.
    api.create_commit(hub_repo_id, [CommitOperationDelete("docs/hello.txt"), CommitOperationDelete("data/"),
                                    CommitOperationAdd("docs/b.txt", b"b")],
                      commit_message="prune", repo_type="dataset")
    assert hub_server.paths(hub_repo_id) == [".gitattributes", "docs/b.txt", "docs/deep/z.txt"]
    api.delete_file("docs/b.txt", hub_repo_id, repo_type="dataset")
    with pytest.raises(EntryNotFoundError):
        api.delete_file("docs/b.txt", hub_repo_id, repo_type="dataset")
    commits = api.list_repo_commits(hub_repo_id, repo_type="dataset")
    assert [c.commit_id for c in commits] == [c["id"] for c in hub_server.commits(hub_repo_id)]
    assert [c.title for c in commits][-1] == "initial commit" and commits[1].title == "prune"
    old_file = hf_hub_download(hub_repo_id, "docs/hello.txt", repo_type="dataset", revision=first.oid,
                               cache_dir=tmp_path)
    assert open(old_file, "rb").read() == b"hello"

    # Auth: public reads work without a token, writes need one; private repos are hidden without one.
    start = len(hub_server.request_log)
    assert anonymous.dataset_info(hub_repo_id).sha == hub_server.head(hub_repo_id)
    assert requests_since(hub_server, start)[-1]["had_auth"] is False
    with pytest.raises(HfHubHTTPError) as info:
        anonymous.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=hub_repo_id, repo_type="dataset")
    assert info.value.response.status_code == 401
    private_id = hub_repo_id + "-private"
    api.create_repo(private_id, repo_type="dataset", private=True)
    assert api.dataset_info(private_id).private is True
    with pytest.raises(RepositoryNotFoundError):
        anonymous.dataset_info(private_id)
    writes = [r for r in hub_server.request_log if r["kind"] in ("commit", "preupload", "create_repo")
              and r["status"] == 200]
    assert writes and all(r["had_auth"] for r in writes)

    # Token values are never recorded: not in the request log, not on disk.
    for token in ("hf_fake_test_token", "hf_other_fake_token"):
        assert token not in repr(hub_server.requests) + repr(hub_server.request_log)
    for path in hub_server.root.rglob("*"):
        if path.is_file() and path.stat().st_size < 1_000_000:
            assert b"_fake_test_token" not in path.read_bytes() and b"hf_other_fake" not in path.read_bytes(), path

    # Everything is on disk: a second server on the same root sees the same repository.
    with HubServer(hub_server.root) as second:
        assert second.paths(hub_repo_id) == hub_server.paths(hub_repo_id)
        assert second.commits(hub_repo_id) == hub_server.commits(hub_repo_id)
