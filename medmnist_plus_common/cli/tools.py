"""The commands that read a build, an export or a Hub repo: ``verify``, ``evaluate``, ``montage``, ``audit``."""

from __future__ import annotations

import json
import math
import os

from ..catalog import SPLITS, config_ref
from .output import Progress, add_verbose_flag, friendly_errors


def cmd_verify(args) -> int:
    from ..tools.verify import print_report, verify

    progress = Progress()
    splits = SPLITS if args.split is None else (args.split,)
    report = verify(config_ref(args.config), against=args.against, repo=args.repo, data_dir=args.data_dir,
                    cache_dir=args.cache_dir, source=args.source, manifest=args.manifest, splits=splits,
                    progress=progress.update, present_only=args.present_only)
    progress.done()
    print_report(report)
    return 0 if report.ok else 1


def add_verify_parser(commands) -> None:
    command = commands.add_parser("verify", help="check a build, export or Hub repo against the catalog or a release file")
    command.add_argument("config", help='"<flag>-<size>", e.g. organmnist3d-64')
    command.add_argument("--against", help="a release .npz (official or regenerated): compare every pixel, label, index")
    command.add_argument("--repo", help="verify a Hub repo (or an exported folder) instead of the local build")
    command.add_argument("--data-dir", help="folder holding the release file (local build), or an exported folder")
    command.add_argument("--cache-dir", help="datasets cache folder of the local build")
    command.add_argument("--source", default="official",
                         help="source of the local build: official (default) or raw (regenerated from --data-dir)")
    command.add_argument("--manifest", help="raw source: CSV split,index,record[,label] giving the official indices")
    command.add_argument("--split", help="only this split (default: all three)")
    command.add_argument("--present-only", action="store_true",
                         help="check only the rows the source has (a partial raw collection): absent rows are not "
                              "mismatches; the summary says how many were present and exact")
    add_verbose_flag(command)
    command.set_defaults(run=friendly_errors(cmd_verify), reads_hub=True)  # may read --repo, never writes it


def cmd_montage(args) -> int:
    from ..tools.montage import montage
    from ..tools.rows import split_name

    progress = Progress()
    split = split_name(args.split)
    output = args.output or f"{args.config}-{split}.{'gif' if args.gif else 'png'}"
    result = montage(config_ref(args.config), split, args.n, data_dir=args.data_dir, repo=args.repo, cache_dir=args.cache_dir,
                     source=args.source, manifest=args.manifest, gif=args.gif, zoom=args.zoom, columns=args.columns,
                     progress=progress.update)
    progress.done()
    result.save(output)
    width, height = result.image.size
    what = f"{len(result.frames)} frames" if args.gif else "PNG"
    print(f"Wrote {output}: {len(result.tiles)} samples of {args.config} {split} ({what}, "
          f"{result.columns} x {math.ceil(len(result.tiles) / result.columns)} tiles, {width} x {height} px, "
          f"{os.path.getsize(output) / 1024:,.0f} KiB)")
    return 0


def add_montage_parser(commands) -> None:
    command = commands.add_parser("montage", help="a PNG grid of samples captioned with label and index (3D: slices, GIF)")
    command.add_argument("config", help='"<flag>-<size>", e.g. dermamnist-64')
    command.add_argument("--split", default="train", help="train (default), validation (or val) or test")
    command.add_argument("-n", type=int, default=100, help="how many samples, the first of the split (default 100)")
    command.add_argument("--source", default="official",
                         help="official (default) or raw: regenerate the samples from the raw collection in --data-dir")
    command.add_argument("--manifest", help="raw source: CSV split,index,record[,label] giving the official indices")
    command.add_argument("--data-dir", help="folder holding the release file, or an exported folder")
    command.add_argument("--repo", help="a Hub repo id or exported folder to stream the samples from")
    command.add_argument("--cache-dir", help="datasets cache folder")
    command.add_argument("-o", "--output", help="file to write (default: <config>-<split>.png, or .gif)")
    command.add_argument("--gif", action="store_true", help="3D: an animated GIF through the axial slices")
    command.add_argument("--zoom", type=int, help="enlarge each pixel to zoom x zoom (default: 2 at 28 px, else 1)")
    command.add_argument("--columns", type=int, help="tiles per row (default: a square grid)")
    add_verbose_flag(command)
    command.set_defaults(run=friendly_errors(cmd_montage), reads_hub=True)


def cmd_evaluate(args) -> int:
    from ..evaluate import evaluate

    progress = Progress()
    progress.note(f"evaluating {args.predictions} on {args.config} {args.split}")
    result = evaluate(config_ref(args.config, any_size=False), args.split, args.predictions, data_dir=args.data_dir, repo=args.repo,
                      cache_dir=args.cache_dir, base_url=args.base_url, progress=progress.update)
    progress.done()
    if args.json:
        with open(args.json + ".partial", "w", encoding="utf-8") as f:
            json.dump({"auc": result.auc, "acc": result.acc, "task": result.task, "n": result.n,
                       "config": result.config, "split": result.split}, f, indent=1)
            f.write("\n")
        os.replace(args.json + ".partial", args.json)
    print(result.summary() + (f"; written to {args.json}" if args.json else ""))
    return 0


def add_evaluate_parser(commands) -> None:
    command = commands.add_parser("evaluate", help="AUC and accuracy of predictions, as MedMNIST defines them")
    command.add_argument("config", help='"<flag>-<size>", e.g. pathmnist-224 (the ground truth of this size)')
    command.add_argument("--split", default="test", help="train, validation (or val) or test (default: test)")
    command.add_argument("--predictions", required=True,
                         help="a .csv (index,score_0,...,score_{K-1}), an .npy (N x K, row i = index i) or an .npz "
                              "(arrays index, scores); binary tasks also take a single positive-class column")
    command.add_argument("--data-dir", help="folder holding the release file, or an exported folder")
    command.add_argument("--repo", help="read the labels from a Hub repo (or exported folder) instead")
    command.add_argument("--cache-dir", help="datasets cache folder (downloads go to <cache-dir>/downloads)")
    command.add_argument("--base-url", help="mirror URL serving the release files by name")
    command.add_argument("--json", help="also write {auc, acc, task, n} to this file")
    add_verbose_flag(command)
    command.set_defaults(run=friendly_errors(cmd_evaluate), reads_hub=True)


def cmd_audit(args) -> int:
    from ..tools.audit import audit, print_report, write_json

    progress = Progress()
    report = audit(config_ref(args.config), data_dir=args.data_dir, repo=args.repo, cache_dir=args.cache_dir, source=args.source,
                   manifest=args.manifest, build=args.build, no_checks=args.no_checks, threshold=args.near,
                   progress=progress.update)
    progress.done()
    if args.json:
        write_json(report, args.json)
    print_report(report, shown=args.show)
    if args.json:
        print(f"All groups written to {args.json}")
    return report.exit_code


def add_audit_parser(commands) -> None:
    from ..tools import DEFAULT_NEAR_THRESHOLD as DEFAULT_THRESHOLD  # no numpy: --help stays light

    command = commands.add_parser(
        "audit", help="exact and near duplicates within and across splits (exit status 1 when any cross splits)")
    command.add_argument("config", help='"<flag>-<size>", e.g. breastmnist-28')
    where = command.add_mutually_exclusive_group()
    where.add_argument("--data-dir", help="folder holding the release file (official, regenerated or derived), "
                                          "or an exported folder")
    where.add_argument("--repo", help="a Hub repo id or exported folder to stream the rows from")
    command.add_argument("--json", help="write every group and the summary to this file (layout: README, `audit`)")
    command.add_argument("--near", type=float, default=DEFAULT_THRESHOLD,
                         help=f"near-duplicate threshold on the normalized thumbnail distance (default "
                              f"{DEFAULT_THRESHOLD}; 0: exact duplicates only)")
    command.add_argument("--build", action="store_true",
                         help="read the local Arrow build (built first if needed) instead of the release file")
    command.add_argument("--no-checks", action="store_true",
                         help="accept a non-official file (subset, benchmark): warn instead of failing on MD5/rows")
    command.add_argument("--cache-dir", help="datasets cache folder")
    command.add_argument("--source", default="official",
                         help="official (default) or raw: regenerate the rows from the raw collection in --data-dir")
    command.add_argument("--manifest", help="raw source: CSV split,index,record[,label] giving the official indices")
    command.add_argument("--show", type=int, default=10, help="groups of each kind printed (default 10)")
    add_verbose_flag(command)
    command.set_defaults(run=friendly_errors(cmd_audit), reads_hub=True)
