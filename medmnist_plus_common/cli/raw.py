"""The raw-source commands of ``medmnist-plus``: ``regenerate``, ``align``, ``calibrate``, and ``build --source raw``.

Kept apart from :mod:`.cli` so the catalog-only commands stay fast: nothing here is imported before it runs.
"""

from __future__ import annotations

import argparse
import os

from ..catalog import load_catalog



def add_raw_source_arguments(command: argparse.ArgumentParser) -> None:
    """The options of a build from a raw source collection (``build``)."""
    command.add_argument("--source", choices=("official", "raw"), default="official",
                         help="official: the release file (default); raw: regenerate from the raw collection in "
                              "--data-dir with the dataset's recipe")
    command.add_argument("--manifest", help="raw: CSV split,index,record[,label] fixing each record's official split "
                                            "and index (e.g. from `align`); without it the paper's split rule applies "
                                            "and the indices are NOT the official ones")
    command.add_argument("--variant", help='raw: change the recipe\'s measurable choices, e.g. "kernel=bicubic,jpeg=none"')
    command.add_argument("--skip-bad", action="store_true",
                         help="raw: leave out unreadable or wrongly sized records (each reported, with a count)")


def _flag(name: str) -> str:
    from ..catalog import load_catalog

    return load_catalog()[name.lower()].flag


def cmd_regenerate(args) -> int:
    from ..tools.regenerate import regenerate

    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    report = regenerate(_flag(args.flag), args.data_dir, sizes, args.out, manifest=args.manifest,
                        num_proc=args.num_proc, skip_bad=args.skip_bad, variant=args.variant,
                        no_checks=args.no_checks, progress=True)
    for size, path in sorted(report.files.items()):
        print(f"  {size:>4} px  {path}  ({os.path.getsize(path) / 2**20:.1f} MiB)")
    for problem in report.skipped:
        print(f"  skipped: {problem}")
    for record in report.blank:
        print(f"  dropped (blank output): {record}")
    print(report.summary() + f". Files in {args.out}, with the manifest used and medmnist_plus_regenerated.json.")
    return 0


def cmd_align(args) -> int:
    from ..tools.align import align

    report = align(_flag(args.flag), args.data_dir, args.release, out=args.out, num_proc=args.num_proc,
                   tolerance=args.tolerance, variant=args.variant, progress=True)
    shown = [(a.record.record, how, f"{a.split} {a.index}", d) for a, how, d in report.matched if how != "exact"]
    shown += [(record.record, "unmatched", why, d) for record, why, d in report.unmatched]
    for record, how, where, distance in shown[: args.show]:
        print(f"  {how:9s} {record}  {where}  (mean abs difference {distance:.3f})")
    if len(shown) > args.show:
        print(f"  ... {len(shown) - args.show} more in {args.out}.report.csv")
    print(report.summary() + f". Manifest: {args.out} (report: {args.out}.report.csv)")
    return 0


def cmd_calibrate(args) -> int:
    from ..tools.calibrate import calibrate

    rows = calibrate(_flag(args.flag), args.data_dir, args.release, args.manifest, limit=args.limit, progress=True)
    print(f"{'variant':40s} {'exact':>12s} {'mean |diff|':>12s} {'max |diff|':>10s}")
    for row in rows[: args.show]:
        print(f"{row.variant.describe():40s} {row.exact:>5d}/{row.total:<5d}  {row.mean_difference:12.3f} "
              f"{row.max_difference:10d}")
    best = rows[0]
    print(f"Best: {best.variant.describe()} ({best.exact}/{best.total} exact, mean difference "
          f"{best.mean_difference:.3f}); use it with --variant \"kernel={best.variant.kernel},jpeg="
          f"{best.variant.jpeg_quality or 'none'}\".")
    return 0


def _raw_command(commands, name: str, help: str, example: str) -> argparse.ArgumentParser:
    """A command that reads a raw collection: its dataset flag and the folder the collection was unpacked into."""
    command = commands.add_parser(name, help=help)
    command.add_argument("flag", help=f"dataset flag, e.g. {example}")
    command.add_argument("--data-dir", required=True, help="the folder the raw collection was unpacked into")
    return command


def add_raw_parsers(commands) -> None:
    regen = _raw_command(commands, "regenerate", "write release files (official format) from a raw collection",
                         "pneumoniamnist")
    regen.add_argument("--sizes", default="28,64,128,224", help="comma-separated sizes (8-1024), default 28,64,128,224")
    regen.add_argument("--out", required=True, help="folder for <flag>.npz / <flag>_<size>.npz, the manifest, provenance")
    regen.add_argument("--manifest", help="CSV split,index,record[,label] with the official indices (from `align`)")
    regen.add_argument("--num-proc", type=int, default=1, help="processes decoding and resizing records")
    regen.add_argument("--variant", help='change the recipe, e.g. "kernel=bicubic,jpeg=none"')
    regen.add_argument("--skip-bad", action="store_true", help="leave out unreadable records (reported)")
    regen.add_argument("--no-checks", action="store_true",
                       help="accept split sizes that differ from the catalog (a partial collection)")
    regen.set_defaults(run=cmd_regenerate)

    align = _raw_command(commands, "align", "recover the official split and index of each raw record", "breastmnist")
    align.add_argument("--release", required=True, help="an official release file of this dataset (e.g. 28 px)")
    align.add_argument("--out", required=True, help="manifest CSV to write (a report goes beside it)")
    align.add_argument("--num-proc", type=int, default=1, help="processes decoding and resizing records")
    align.add_argument("--tolerance", type=float, default=2.0,
                       help="largest mean absolute difference (gray levels) of a nearest match (default 2.0)")
    align.add_argument("--variant", help="the recipe variant to regenerate with (default: the measured rule)")
    align.add_argument("--show", type=int, default=20, help="how many non-exact records to print")
    align.set_defaults(run=cmd_align)

    calibrate = _raw_command(commands, "calibrate", "compare recipe variants with an official release file",
                             "pneumoniamnist")
    calibrate.add_argument("--release", required=True, help="an official release file (its size is the one tested)")
    calibrate.add_argument("--manifest", required=True, help="the records to compare with their official rows")
    calibrate.add_argument("--limit", type=int, default=200, help="compare at most this many records (default 200)")
    calibrate.add_argument("--show", type=int, default=10, help="how many variants to print, best first")
    calibrate.set_defaults(run=cmd_calibrate)


__all__ = ["add_raw_parsers", "add_raw_source_arguments"]


def cmd_derive(args) -> int:
    from ..hf.sources import REGENERATED_PROVENANCE
    from ..tools.derive import derive

    flag = load_catalog()[args.flag.lower()].flag
    report = derive(flag, args.from_size, args.to_size, args.data_dir, args.out)
    print(f"  {report.path}  ({os.path.getsize(report.path) / 2**20:.1f} MiB)")
    print(report.summary() + f". Provenance in {os.path.join(args.out, REGENERATED_PROVENANCE)}; build it with "
          f"--data-dir {args.out} (labelled derived, not the official release).")
    return 0


def add_derive_parser(commands) -> argparse.ArgumentParser:
    from ..tools.derive import DERIVATIONS

    """``medmnist-plus derive <flag> --from S --to T --data-dir D --out O``."""
    pairs = "; ".join(f"{flag}: " + ", ".join(f"{t} from {f}" for f, t in table) for flag, table in DERIVATIONS.items())
    command = commands.add_parser(
        "derive", help="write one official size as a release file derived from another, where the recipe allows it",
        description=f"Derive a release file of one size from the file of another size, as the recipe does ({pairs}). "
                    "The file is written in the official format with a provenance entry: NOT the official release.")
    command.add_argument("flag", help="dataset flag, e.g. adrenalmnist3d")
    command.add_argument("--from", dest="from_size", type=int, required=True, help="size of the file to read")
    command.add_argument("--to", dest="to_size", type=int, required=True, help="size to write")
    command.add_argument("--data-dir", required=True, help="folder holding the release file of size --from")
    command.add_argument("--out", required=True, help="folder to write the derived file and its provenance into")
    command.set_defaults(run=cmd_derive)
    return command
