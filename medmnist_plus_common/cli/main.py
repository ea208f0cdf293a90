"""The ``medmnist-plus`` command: the MedMNIST+ collection as Hugging Face datasets (commands below)."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import traceback
from typing import List, Optional

from .. import __version__
from ..catalog import ANY_SIZE_RANGE, SPLITS, config_ref, load_catalog
from ..errors import MedMNISTPlusError
from .raw import add_derive_parser, add_raw_parsers, add_raw_source_arguments
from .tools import add_audit_parser, add_evaluate_parser, add_montage_parser, add_verify_parser

PACKAGE = __name__.split(".")[0]  # the logger every module's logger descends from


def _split_counts(counts) -> str:
    return " / ".join(f"{counts[split]:,}" for split in SPLITS)


def cmd_list(args) -> int:
    catalog = load_catalog()
    rows = [("config", "dims", "task", "channels", "train / validation / test", "release file")]
    for facts in catalog:
        for size in facts.sizes:
            rows.append((facts.config_name(size), f"{facts.dims}D", facts.task, str(facts.channels),
                         _split_counts(facts.split_counts), facts.files[size].file))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    print(f"\n{len(rows) - 1} configs in {len(catalog)} datasets: the official sizes, each with its release file. "
          f"From a raw source collection (build --source raw, regenerate) any size from {ANY_SIZE_RANGE[0]} to "
          f"{ANY_SIZE_RANGE[1]} can be made, e.g. pathmnist-96; those are not official.")
    return 0


def cmd_info(args) -> int:
    catalog, name = load_catalog(), args.flag.lower()
    chosen = None
    if name in {facts.flag for facts in catalog}:
        facts = catalog[name]
    elif "-" in name:  # a config name, "<flag>-<size>": that dataset, its config marked
        chosen = config_ref(name, any_size=False)
        facts = chosen.facts
    else:
        facts = catalog[name]  # unknown: the closest suggestions
    print(f"{facts.title} ({facts.flag}): {facts.task}, {facts.dims}D, {facts.channels} channel(s), {facts.license}")
    print(f"splits (train / validation / test): {_split_counts(facts.split_counts)}")
    print("labels:")
    for i, name in enumerate(facts.labels):
        print(f"  {i:2d}  {name}")
    print(f"source collection: {facts.source_collection.name}")
    print(f"  {facts.source_collection.citation}")
    print("official release files (Zenodo record 10519652):")
    for size in facts.sizes:
        release = facts.files[size]
        mark = "*" if chosen is not None and size == chosen.size else " "
        print(f"{mark} {facts.config_name(size):22s} {release.file:28s} md5 {release.md5}")
    if chosen is not None:
        print(f"* {chosen.name}: {'x'.join(map(str, chosen.shape))} uint8 per example")
    print(f"\n{facts.description}")
    return 0


def _verification_mode(no_checks: bool) -> Optional[str]:
    return "no_checks" if no_checks else None


def cmd_build(args) -> int:
    from .. import builder_for

    ref = config_ref(args.config)  # parsed once; the builder explains non-official sizes
    kwargs = {"cache_dir": args.cache_dir, "data_dir": args.data_dir, "base_url": args.base_url,
              "image_storage": args.image_storage, "source": args.source, "manifest": args.manifest,
              "recipe_variant": args.variant, "skip_bad": args.skip_bad or None}
    instance = builder_for(ref, **{k: v for k, v in kwargs.items() if v is not None})
    # datasets reuses a finished cache folder (it writes dataset_info.json last) unless asked to rebuild
    cached = not args.force and os.path.isfile(os.path.join(instance.cache_dir, "dataset_info.json"))
    instance.download_and_prepare(
        num_proc=args.num_proc,
        verification_mode=_verification_mode(args.no_checks),
        download_mode="force_redownload" if args.force else None,
    )
    if cached:
        print(f"Already built: {args.config} in {instance.cache_dir} (nothing rebuilt; --force rebuilds it)")
    else:
        print(f"Built {args.config} in {instance.cache_dir}")
    for split, info in instance.info.splits.items():
        print(f"  {split:10s} {info.num_examples:>9,} examples  {info.num_bytes / 2**20:9.1f} MiB")
    if args.source == "raw":
        print(f"  source: regenerated from the raw collection in {args.data_dir} (not the official release); "
              f"indices: {instance.provenance()['indices']}")
    return 0


def _publish_kwargs(args) -> dict:
    return {"max_shard_size": args.max_shard_size, "num_shards": args.num_shards, "num_proc": args.num_proc, "no_checks": args.no_checks,
            "data_dir": args.data_dir, "cache_dir": args.cache_dir, "base_url": args.base_url}


def cmd_export(args) -> int:
    from ..publish.push import export, resolve_configs

    configs = resolve_configs(args.configs.split(",") if args.configs else None, args.all)
    written = export(args.out, configs, **_publish_kwargs(args))
    print(f"Exported {len(written)} config(s) to {args.out}: {', '.join(written)}")
    print(f'Load with: datasets.load_dataset("{args.out}", "{written[0]}")')
    return 0


def cmd_push(args) -> int:
    from ..publish.push import push, resolve_configs

    if args.from_export and args.all:
        configs = None  # every config in the export
    else:
        configs = resolve_configs(args.configs.split(",") if args.configs else None, args.all)
    pushed = push(args.repo, configs, private=args.private, endpoint=args.endpoint, token=args.token,
                  from_export=args.from_export, **_publish_kwargs(args))
    print(f"Pushed {len(pushed)} config(s) to {args.repo}: {', '.join(pushed)}")
    print(f'Load with: datasets.load_dataset("{args.repo}", "{pushed[0]}")')
    return 0


DEMO_CONFIGS = ("bloodmnist-64", "organmnist3d-28")


def cmd_demo(args) -> int:
    """Build and load back a small synthetic release of two configs, fully offline (a temp folder, then removed)."""
    # The sample is not the official file, so it is built with verification_mode="no_checks"; the MD5 and
    # row-count warnings that mode prints are expected here and silenced (for the demo only).
    quiet = [logging.getLogger(f"{PACKAGE}.release")]  # the reader's and the download's loggers
    levels = [logger.level for logger in quiet]
    workdir = args.workdir or tempfile.mkdtemp(prefix="medmnist-plus-demo-")
    try:
        for logger in quiet:
            logger.setLevel(logging.ERROR)
        return _demo(workdir, keep=bool(args.workdir))
    finally:
        for logger, level in zip(quiet, levels):
            logger.setLevel(level)
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)


DEMO_COUNTS = {"train": 24, "validation": 8, "test": 8}


def _demo(workdir: str, keep: bool) -> int:
    import numpy as np

    from .. import builder_for
    from ..release.reader import member_name
    from ..release.synthetic import read_synthetic_arrays, write_synthetic_release

    print("SYNTHETIC DATA: this demo writes made-up images in the official MedMNIST+ file format")
    where = workdir if keep else f"{workdir} (a temporary folder, removed at the end; --workdir DIR keeps one)"
    print(f"(not real medical images) to {where} and builds them with the real builders, offline.\n")
    data_dir = os.path.join(workdir, "release")
    os.makedirs(data_dir, exist_ok=True)
    for config in DEMO_CONFIGS:
        ref = config_ref(config)
        facts = ref.facts
        path = write_synthetic_release(os.path.join(data_dir, ref.release.file), facts, ref.size,
                                       counts=DEMO_COUNTS, seed=1)
        instance = builder_for(ref, data_dir=data_dir, cache_dir=os.path.join(workdir, "cache"))
        instance.download_and_prepare(verification_mode="no_checks")
        built = instance.as_dataset()
        streamed = instance.as_streaming_dataset(split="test")
        arrays = read_synthetic_arrays(path)
        column = "volume" if facts.dims == 3 else "image"
        exact = all(
            np.array_equal(np.asarray(example[column], dtype=np.uint8), arrays[member_name(split, "images")][example["index"]])
            for split in SPLITS for example in built[split]
        )
        streamed_indices = [example["index"] for example in streamed]
        first = built["train"][0]
        label = first["label"]
        label_name = built["train"].features["label"].int2str(label) if not facts.is_multilabel else label
        print(f"[SYNTHETIC] {config}: {facts.title}, {facts.task}")
        print("  splits: " + ", ".join(f"{s}={built[s].num_rows}" for s in SPLITS) + f"  (cache: {instance.cache_dir})")
        print(f"  features: {dict(built['train'].features)}")
        print(f"  train[0]: index={first['index']} {column}={_describe(first[column])} label={label} ({label_name})")
        print(f"  every pixel equals the release arrays: {exact}; streamed test indices: {streamed_indices}\n")
        if not exact or streamed_indices != list(range(built["test"].num_rows)):
            print("DEMO FAILED: built data differs from the release file.", file=sys.stderr)
            return 1
    print("Demo done" + ("." if keep else f"; {workdir} is removed.")
          + " Real data: `medmnist-plus build <config>` downloads the official file (MD5-checked).")
    return 0


def _describe(value) -> str:
    if hasattr(value, "mode"):
        return f"PIL {value.mode} {value.size[0]}x{value.size[1]}"
    import numpy as np

    array = np.asarray(value)
    return f"array {tuple(array.shape)}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="medmnist-plus", description="The MedMNIST+ collection (18 biomedical image datasets, 2D and 3D, all "
        "sizes) as Hugging Face datasets: build, load, regenerate, verify and publish (commands below).")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log what happens (downloads, retries); on errors, also show the traceback")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="every config with its sizes and split counts").set_defaults(run=cmd_list)
    info = commands.add_parser("info", help="facts about one dataset")
    info.add_argument("flag", help="dataset flag, e.g. pathmnist")
    info.set_defaults(run=cmd_info)
    build = commands.add_parser("build", help="build the Arrow cache from the official file (downloaded or local) "
                                              "or, with --source raw, from the raw source collection")
    build.add_argument("config", help='"<flag>-<size>", e.g. organmnist3d-64 (raw sources: any size 8-1024)')
    build.add_argument("--data-dir", help="folder holding the official .npz (no download), or the raw collection")
    build.add_argument("--cache-dir", help="datasets cache folder (default: HF_DATASETS_CACHE)")
    build.add_argument("--base-url", help="mirror URL serving the release files by name")
    build.add_argument("--num-proc", type=int, default=None, help="processes for the build")
    build.add_argument("--no-checks", action="store_true",
                       help="accept a non-official file (subset, benchmark): warn instead of failing on MD5/rows")
    build.add_argument("--force", action="store_true", help="download again and rebuild")
    build.add_argument("--image-storage", choices=("png", "raw"), default=None,
                       help="2D images as PNG (default, smallest) or raw uint8 arrays (fastest to train from)")
    add_raw_source_arguments(build)
    build.set_defaults(run=cmd_build)
    for name, run, text in (("export", cmd_export, "write Parquet shards + dataset card to a local folder"),
                            ("push", cmd_push, "publish Parquet shards + dataset card to a Hugging Face Hub repo")):
        command = commands.add_parser(name, help=text)
        if name == "export":
            command.add_argument("--out", required=True, help="folder to write (a folder named medmnist_plus serves "
                                                               'load_dataset("medmnist_plus", ...) from its parent)')
        else:
            command.add_argument("--repo", required=True, help="<namespace>/medmnist_plus")
            command.add_argument("--private", action="store_true", help="create the repo private")
            command.add_argument("--endpoint", help="Hub URL (default: HF_ENDPOINT or https://huggingface.co)")
            command.add_argument("--token", help="Hub token (default: HF_TOKEN / huggingface-cli login); never printed")
            command.add_argument("--from-export", help="publish the configs of a folder written by `export`")
        chosen = command.add_mutually_exclusive_group(required=True)
        chosen.add_argument("--configs", help="comma-separated config names, e.g. pathmnist-224,organmnist3d-64")
        chosen.add_argument("--all", action="store_true", help="all 60 configs (with --from-export: all in it)")
        command.add_argument("--max-shard-size", default="500MB", help="largest Parquet shard (default 500MB)")
        command.add_argument("--num-shards", type=int, default=None,
                             help="Parquet shards per split (overrides --max-shard-size; streaming wants >= workers x ranks)")
        command.add_argument("--num-proc", type=int, default=None, help="processes for building")
        command.add_argument("--data-dir", help="folder holding the official .npz files (no download)")
        command.add_argument("--cache-dir", help="datasets cache folder")
        command.add_argument("--base-url", help="mirror URL serving the release files by name")
        command.add_argument("--no-checks", action="store_true", help="accept non-official files (card says so)")
        command.set_defaults(run=run)
    demo = commands.add_parser("demo", help="build a small synthetic sample offline and load it back")
    demo.add_argument("--workdir", help="where to write the sample and its cache (default: a new temp folder)")
    demo.set_defaults(run=cmd_demo)
    add_raw_parsers(commands)
    add_evaluate_parser(commands)
    add_verify_parser(commands)
    add_montage_parser(commands)
    add_audit_parser(commands)
    add_derive_parser(commands)
    return parser


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is now (main() may run more than once in a process)."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass

    def emit(self, record):
        # A progress bar may be drawn on this line: tqdm clears it, prints the message, and draws the bar again
        # (otherwise the warning is glued to the bar's end).
        tqdm = sys.modules.get("tqdm")
        if tqdm is None or not hasattr(tqdm, "tqdm"):
            return super().emit(record)
        try:
            tqdm.tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 (logging must not raise)
            self.handleError(record)


def _configure_logging(verbose: bool) -> None:
    """Our loggers print ``LEVEL message`` to stderr. Only ours: datasets and huggingface_hub print their own
    messages through their own handlers, so a root handler (logging.basicConfig) would print each of those twice."""
    logger = logging.getLogger(PACKAGE)
    if not any(isinstance(handler, _StderrHandler) for handler in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO if verbose else logging.NOTSET)  # NOTSET: the root's level (WARNING by default)


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    _configure_logging(args.verbose)
    try:
        return args.run(args)
    except BrokenPipeError:
        if not _stdout_closed():
            raise  # a connection that broke (the Hub's, a download's): explained like other failures, below
        # `medmnist-plus list | head -1`: the reader has what it wanted; end quietly, as other Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
        return 0
    except Exception as err:  # known errors: one paragraph (the traceback only with --verbose); bugs: the traceback
        if isinstance(err, MedMNISTPlusError):
            message = str(err)
        else:
            from .hub_errors import explain

            message = explain(err, getattr(args, "endpoint", None), reading=getattr(args, "reads_hub", False))
            if message is None:
                raise
        if args.verbose:
            traceback.print_exc()
        print(f"error: {message}", file=sys.stderr)
        return 2


def _stdout_closed() -> bool:
    """Whether the reading end of our standard output is gone (a pipe whose reader exited)."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll (Windows), or stdout is not a real file
        return False
