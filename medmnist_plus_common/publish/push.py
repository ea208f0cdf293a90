"""Publishing: Parquet shards + dataset card to a Hugging Face Hub repo (push) or to a local folder (export).

Both write the same layout, the one ``datasets``' own ``push_to_hub(config_name=...)`` writes::

    README.md                      card: YAML (configs, dataset_info, license, tags...) + description
    medmnist_plus.json             provenance of every listed config
    <flag>-<size>/<split>-00000-of-0000N.parquet

so stock ``load_dataset("<namespace>/medmnist_plus", "<config>")`` or ``load_dataset(folder, "<config>")``
reads it with no package of ours installed.

A push never leaves a config listed in the card whose shards are incomplete: a config being replaced is first
taken out of the card, ``push_to_hub`` then uploads its shards and lists it in its final commit (deleting stale
shards), and only then is our card written with it. A push that failed half-way can simply be run again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
from typing import Dict, Iterable, List, Optional, Tuple, Union

import datasets
from huggingface_hub import CommitOperationAdd, DatasetCard, HfApi
from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError

from ..hf import internals
from .card import PROVENANCE_FILE, render_card
from ..catalog import SPLITS, ConfigRef, config_ref, load_catalog
from ..errors import UsageError
from ..logs import dropping

logger = logging.getLogger(__name__)


def _no_num_proc_note():
    """Without this, push_to_hub says "Setting num_proc from 1 back to 1" for every one-shard split of a push that
    never asked for processes (datasets' own logger; the note is dropped only when it says nothing)."""
    return dropping(logging.getLogger("datasets.arrow_dataset"), "Setting num_proc from 1 back to 1")
CARD_FILE = "README.md"
DEFAULT_MAX_SHARD_SIZE = "500MB"
# Streaming reads a whole Parquet row group per shard (datasets aims for 100MB ones): small groups keep a
# training loop's memory bounded (measured in benchmarks/) at a negligible cost in file size.
ROW_GROUP_SIZE = "8MB"


@contextlib.contextmanager
def small_row_groups(size: Optional[str] = None):
    """Make datasets' Parquet writers (push_to_hub, to_parquet) aim for row groups of ``size``."""
    with internals.max_row_group_size(size or ROW_GROUP_SIZE):
        yield


def rows_per_row_group(dataset: datasets.Dataset) -> int:
    return internals.rows_per_row_group(dataset, ROW_GROUP_SIZE)


def resolve_configs(configs: Optional[Iterable[Union[str, ConfigRef]]] = None,
                    all_configs: bool = False) -> List[ConfigRef]:
    """The configs to publish, parsed once (unknown names fail with suggestions)."""
    catalog = load_catalog()
    if all_configs:
        return [config_ref(name) for name in catalog.config_names()]
    refs = [config_ref(c if isinstance(c, ConfigRef) else c.strip()) for c in (configs or [])
            if isinstance(c, ConfigRef) or c.strip()]
    if not refs:
        raise UsageError("Name the configs to publish (e.g. pathmnist-224,organmnist3d-64; CLI --configs), or ask for "
                         "all of them (all_configs=True; CLI --all).")
    return refs


def build_config(config: Union[str, ConfigRef], *, no_checks: bool = False, num_proc: Optional[int] = None,
                 **builder_kwargs) -> Tuple[datasets.DatasetDict, dict]:
    """Build one config (Arrow cache) and return it with its provenance."""
    from .. import builder_for

    kwargs = {key: value for key, value in builder_kwargs.items() if value is not None}
    instance = builder_for(config, **kwargs)
    instance.download_and_prepare(verification_mode="no_checks" if no_checks else None, num_proc=num_proc)
    return instance.as_dataset(), instance.provenance(checked=not no_checks)


COMPACT_BATCH = 64


def _compact_batch(images: List[dict]) -> dict:
    from ..hf.features import compact_png

    return {"image": [{"bytes": compact_png(image["bytes"]), "path": None} for image in images]}


def compact_images(dataset: datasets.DatasetDict, scratch: str, num_proc: Optional[int] = None) -> datasets.DatasetDict:
    """``dataset`` with every PNG of its ``image`` column re-encoded by :func:`..hf.features.encode_png`.

    The local cache stores fast PNGs (:func:`..hf.features.encode_png_fast`, some 10 % larger); what goes to a
    folder or the Hub is encoded compactly, the same way whatever encoder built the cache (the pixels are the same;
    the tests check both). The re-encoded splits are written to ``scratch`` (a temporary folder the caller removes
    after publishing), never into the build's cache folder. Volumes and raw images are returned as they are."""
    out = {}
    for split, data in dataset.items():
        if not isinstance(data.features.get("image"), datasets.Image):
            return dataset
        undecoded = data.cast_column("image", datasets.Image(decode=False))
        procs = num_proc if num_proc and num_proc > 1 and data.num_rows >= 4 * COMPACT_BATCH * num_proc else None
        compacted = undecoded.map(_compact_batch, input_columns="image", batched=True, batch_size=COMPACT_BATCH,
                                  num_proc=procs, features=undecoded.features, desc=f"Compact PNG ({split})",
                                  cache_file_name=os.path.join(scratch, f"{split}.arrow"))
        out[split] = compacted.cast_column("image", datasets.Image())
    return datasets.DatasetDict(out)


@contextlib.contextmanager
def _scratch(near: Optional[str]):
    """A temporary folder for the compact copy of a config, on the file system of ``near`` (removed after)."""
    if near:
        os.makedirs(near, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".medmnist-plus-compact-", dir=near or None) as folder:
        yield folder


def _with_preview(origin: dict, name: str, dataset, *, out_dir: Optional[str] = None, api: Optional[HfApi] = None,
                  repo_id: Optional[str] = None) -> dict:
    """Write a montage of the config's first training samples (``previews/<config>.png``) beside the shards and
    note it in the config's provenance, which the card shows. One that cannot be drawn is only a warning."""
    from ..tools.montage import preview_path, preview_png

    origin = {key: value for key, value in origin.items() if key != "preview"}
    try:
        png = preview_png(name, dataset["train"])
    except Exception as err:  # noqa: BLE001 (a missing preview never fails a publication)
        logger.warning("No preview for %s (%s: %s); the card shows none.", name, type(err).__name__, err)
        return origin
    path = preview_path(name)
    if out_dir is not None:
        target = os.path.join(out_dir, path)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target + ".partial", "wb") as f:
            f.write(png)
        os.replace(target + ".partial", target)
    else:
        api.upload_file(path_or_fileobj=png, path_in_repo=path, repo_id=repo_id, repo_type="dataset",
                        commit_message=f"Preview of {name} (medmnist-plus)")
    return {**origin, "preview": path}


def _with_duplicates(origin: dict, name: str, dataset) -> dict:
    """The config's exact-duplicate counts (groups of identical images, across splits, with conflicting labels), as
    ``medmnist-plus audit --near 0`` finds them, noted in its provenance for the card."""
    from ..tools.audit import stored_duplicate_counts

    return {**origin, "duplicates": stored_duplicate_counts(name, dataset)}


# ---------------------------------------------------------------------------------------------- export


def export(out_dir: str, config_names: Iterable[Union[str, ConfigRef]], *, max_shard_size=DEFAULT_MAX_SHARD_SIZE,
           num_shards: Optional[int] = None, num_proc: Optional[int] = None, no_checks: bool = False,
           **builder_kwargs) -> List[str]:
    """Write each config's Parquet shards and the card to ``out_dir``; return the configs written.

    ``num_shards`` (per split, at most one row each) overrides ``max_shard_size``: streaming spreads shards over
    DataLoader workers and ranks, so a split wants at least workers x ranks shards.
    """
    os.makedirs(out_dir, exist_ok=True)
    metadata, provenance = _read_local_card(out_dir)
    written = []
    for ref in [config_ref(config) for config in config_names]:  # each name parsed once, here
        name = ref.name
        dataset, origin = build_config(ref, no_checks=no_checks, num_proc=num_proc, **builder_kwargs)
        provenance.pop(name, None)  # unlisted while its shards are replaced
        _write_local_card(out_dir, metadata, provenance)
        with _scratch(out_dir) as scratch:
            dataset = compact_images(dataset, scratch, num_proc)
            info = _write_parquet_config(out_dir, name, dataset, max_shard_size, num_shards)
            origin = _with_duplicates(_with_preview(origin, name, dataset, out_dir=out_dir), name, dataset)
        metadata = _with_config_metadata(metadata, name, info)
        provenance[name] = origin
        _write_local_card(out_dir, metadata, provenance)
        written.append(name)
    return written


def _write_parquet_config(out_dir: str, name: str, dataset: datasets.DatasetDict, max_shard_size,
                          num_shards: Optional[int] = None) -> datasets.DatasetInfo:
    """Write ``<out_dir>/<name>/<split>-XXXXX-of-NNNNN.parquet`` atomically (temp folder, then rename)."""
    max_bytes = internals.file_size_to_bytes(max_shard_size)
    partial = os.path.join(out_dir, f".{name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    os.makedirs(partial)
    info = datasets.DatasetInfo(config_name=name, features=dataset["train"].features, splits=datasets.SplitDict(),
                                download_size=0, dataset_size=0)
    for split in SPLITS:
        split_dataset = dataset[split]
        shards = _shard_count(split_dataset, max_bytes, num_shards)
        row_group_rows = rows_per_row_group(split_dataset)  # one estimate per split, not per shard
        for index in range(shards):
            shard = split_dataset.shard(num_shards=shards, index=index, contiguous=True)
            path = os.path.join(partial, f"{split}-{index:05d}-of-{shards:05d}.parquet")
            shard.to_parquet(path, batch_size=row_group_rows)
            info.download_size += os.path.getsize(path)
        nbytes = split_dataset.data.nbytes
        info.splits.add(datasets.SplitInfo(name=split, num_bytes=nbytes, num_examples=split_dataset.num_rows))
        info.dataset_size += nbytes
    target = os.path.join(out_dir, name)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(partial, target)
    return info


def _shard_count(dataset: datasets.Dataset, max_bytes: int, num_shards: Optional[int]) -> int:
    if num_shards is None:
        num_shards = int(internals.estimated_nbytes(dataset) / max_bytes) + 1  # as push_to_hub computes it
    return max(1, min(num_shards, dataset.num_rows))


def _with_config_metadata(metadata: dict, name: str, info: datasets.DatasetInfo) -> dict:
    data_files = [{"split": s, "path": f"{name}/{s}-*"} for s in SPLITS]
    return internals.card_metadata_with_config(metadata, name, data_files, info)


def _read_local_card(out_dir: str) -> Tuple[dict, Dict[str, dict]]:
    card_path, provenance_path = os.path.join(out_dir, CARD_FILE), os.path.join(out_dir, PROVENANCE_FILE)
    metadata = DatasetCard.load(card_path).data.to_dict() if os.path.isfile(card_path) else {}
    provenance = {}
    if os.path.isfile(provenance_path):
        with open(provenance_path, encoding="utf-8") as f:
            provenance = json.load(f)
    return metadata, provenance


def _write_local_card(out_dir: str, metadata: dict, provenance: Dict[str, dict]) -> None:
    for filename, text in ((PROVENANCE_FILE, json.dumps(provenance, indent=1, sort_keys=True) + "\n"),
                           (CARD_FILE, str(render_card(metadata, provenance)))):
        path = os.path.join(out_dir, filename)
        with open(path + ".partial", "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(path + ".partial", path)


# ------------------------------------------------------------------------------------------------ push


hub_endpoint = internals.hub_endpoint  # points datasets and huggingface_hub at --endpoint for a push


def push(repo_id: str, config_names: Optional[Iterable[Union[str, ConfigRef]]], *, private: bool = False, max_shard_size=DEFAULT_MAX_SHARD_SIZE,
         num_shards: Optional[int] = None, endpoint: Optional[str] = None, token: Optional[str] = None, from_export: Optional[str] = None,
         num_proc: Optional[int] = None, no_checks: bool = False, **builder_kwargs) -> List[str]:
    """Publish each config to ``repo_id`` with ``push_to_hub(config_name=...)``, then write the card.

    With ``from_export``, the configs come from that folder; ``config_names=None`` publishes all of them.
    """
    with hub_endpoint(endpoint):
        api = HfApi(endpoint=internals.current_endpoint(), token=token, library_name="medmnist-plus")
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        exported = _read_local_card(from_export)[1] if from_export else {}
        if config_names is None:
            config_names = sorted(exported)
        pushed = []
        for config in config_names:
            name = config.name if isinstance(config, ConfigRef) else config
            if from_export:
                if name not in exported:
                    raise UsageError(f"{from_export}: has no complete config {name!r} (it has {sorted(exported)}). "
                                     "Export it first (medmnist-plus export), or push one of those.")
                dataset = datasets.load_dataset(from_export, name)
                origin = exported[name]
            else:
                dataset, origin = build_config(config_ref(config), no_checks=no_checks, num_proc=num_proc,
                                               **builder_kwargs)
            with contextlib.ExitStack() as stack:
                if not from_export:  # an export holds compact PNGs already
                    scratch = stack.enter_context(_scratch(builder_kwargs.get("cache_dir")
                                                           or datasets.config.HF_DATASETS_CACHE))
                    dataset = compact_images(dataset, scratch, num_proc)
                origin = _publish_config(api, repo_id, name, dataset, origin, private=private, token=token,
                                         max_shard_size=max_shard_size, num_shards=num_shards)
            pushed.append(name)
            logger.info("Pushed %s to %s", name, repo_id)
        return pushed


def _publish_config(api, repo_id, name, dataset, origin, *, private, token, max_shard_size, num_shards) -> dict:
    """Push one config's shards with ``push_to_hub``, then its preview and card entry (see :func:`push`); the
    config's provenance as the card lists it."""
    _update_hub_card(api, repo_id, remove=name)  # unlisted while its shards are replaced
    # Shard counts computed here as push_to_hub would, but never above the row count (datasets 5.2
    # fails on empty shards when max_shard_size is small next to a split).
    max_bytes = internals.file_size_to_bytes(max_shard_size)
    shards = {split: _shard_count(dataset[split], max_bytes, num_shards) for split in dataset}
    with small_row_groups(), _no_num_proc_note():
        dataset.push_to_hub(repo_id, config_name=name, num_shards=shards, token=token, private=private,
                            commit_message=f"Upload {name} (medmnist-plus)")
    origin = _with_preview(origin, name, dataset, api=api, repo_id=repo_id)
    if "duplicates" not in origin:  # an export made before the card counted them
        origin = _with_duplicates(origin, name, dataset)
    _update_hub_card(api, repo_id, add=(name, origin))
    return origin


def _update_hub_card(api: HfApi, repo_id: str, add: Optional[Tuple[str, dict]] = None,
                     remove: Optional[str] = None, attempts: int = 5) -> None:
    """Rewrite README.md and the provenance file in one commit, based on the current head (retried on races)."""
    for attempt in range(attempts):
        head = api.repo_info(repo_id, repo_type="dataset").sha
        metadata, provenance = _read_hub_card(api, repo_id, head)
        if remove is not None:
            if remove not in provenance and not _lists_config(metadata, remove):
                return
            provenance.pop(remove, None)
            metadata = _without_config(metadata, remove)
        if add is not None:
            provenance[add[0]] = add[1]
        operations = [
            CommitOperationAdd(CARD_FILE, str(render_card(metadata, provenance)).encode("utf-8")),
            CommitOperationAdd(PROVENANCE_FILE, (json.dumps(provenance, indent=1, sort_keys=True) + "\n").encode()),
        ]
        try:
            api.create_commit(repo_id, operations=operations, repo_type="dataset", parent_commit=head,
                              commit_message="Update dataset card (medmnist-plus)")
            return
        except HfHubHTTPError as err:
            status = getattr(getattr(err, "response", None), "status_code", None)
            if status not in (409, 412) or attempt == attempts - 1:
                raise
            logger.info("The repo moved on while the card was written; retrying (%d)", attempt + 1)


def _read_hub_card(api: HfApi, repo_id: str, revision: str) -> Tuple[dict, Dict[str, dict]]:
    def read(filename: str) -> Optional[str]:
        try:
            path = api.hf_hub_download(repo_id, filename, repo_type="dataset", revision=revision)
        except EntryNotFoundError:
            return None
        with open(path, encoding="utf-8") as f:
            return f.read()

    card_text, provenance_text = read(CARD_FILE), read(PROVENANCE_FILE)
    metadata = DatasetCard(card_text).data.to_dict() if card_text else {}
    return metadata, (json.loads(provenance_text) if provenance_text else {})


def _lists_config(metadata: dict, name: str) -> bool:
    return any(entry.get("config_name") == name for entry in metadata.get("configs", []))


def _without_config(metadata: dict, name: str) -> dict:
    metadata = dict(metadata)
    metadata["configs"] = [e for e in metadata.get("configs", []) if e.get("config_name") != name]
    infos = metadata.get("dataset_info", [])
    infos = [infos] if isinstance(infos, dict) else infos
    metadata["dataset_info"] = [e for e in infos if e.get("config_name", "default") != name]
    return {key: value for key, value in metadata.items() if value != []}
