"""Damaged release files, seeded: every byte mutation of a real release either builds rows equal to the original
or fails with one clear ReleaseFileError (the file named, what is wrong, what to do), never another exception, a
hang or a cache that looks complete (issue 16, item 2).

The release is ``../shared/data/breastmnist.npz`` (genuine) when present, else a fake in the same format. Each
mutation is built with ``verification_mode="no_checks"`` (CLI ``--no-checks``), so its MD5 does not stop it before
the reader sees the damage. The builds run in one worker process (``python -m`` this module) that a watchdog
(``faulthandler``) ends if one build takes longer than BUILD_TIMEOUT, even inside C code; the test then names the
mutation that hung.
"""

from __future__ import annotations

import io
import json
import os
import random
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

SEED = 16
BUILD_TIMEOUT = 60  # seconds for one build of a 0.5 MB file (a few tenths of a second when nothing hangs)
FILE = "breastmnist.npz"
CONFIG = "breastmnist-28"
# mutations per kind (about 0.1 s each; the worker's start-up, about 3 s, is paid once)
PER_KIND = {"data bit flip": 24, "member start bit flip": 12, "directory bit flip": 24, "header field": 24,
            "truncation": 12, "zeroed run": 12}
REPO = Path(__file__).resolve().parents[2]


def _original(tmp_path: Path) -> Path:
    from tests.genuine.samples import SHARED_DATA

    genuine = SHARED_DATA / FILE
    if genuine.is_file():
        return genuine
    from medmnist_plus_common.catalog import load_catalog
    from tests.fakes.releases import write_fake_release

    path, _ = write_fake_release(tmp_path / "fake", "breastmnist", 28, load_catalog()["breastmnist"].split_counts)
    return path


# Fields of a central directory entry and of a local header (offset, width), from the zip specification.
_DIRECTORY_FIELDS = {"version made by": (4, 2), "version needed": (6, 2), "flags": (8, 2), "method": (10, 2),
                     "crc-32": (16, 4), "compressed size": (20, 4), "size": (24, 4), "name length": (28, 2),
                     "extra length": (30, 2), "comment length": (32, 2), "local header offset": (42, 4)}
_LOCAL_FIELDS = {"version needed": (4, 2), "flags": (6, 2), "method": (8, 2), "crc-32": (14, 4),
                 "compressed size": (18, 4), "size": (22, 4), "name length": (26, 2), "extra length": (28, 2)}
_END_FIELDS = {"entries on disk": (8, 2), "entries": (10, 2), "directory size": (12, 4), "directory offset": (16, 4),
               "comment length": (20, 2)}


def mutations(data: bytes, seed: int = SEED):
    """``(description, mutated bytes)`` for every kind in PER_KIND, from a seeded generator (repeatable)."""
    rng = random.Random(seed)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        infos = archive.infolist()
        directory = archive.start_dir
    starts = [info.header_offset + 30 + len(info.filename.encode()) + len(info.extra) for info in infos]
    spans = [(start, start + info.compress_size, info.filename) for start, info in zip(starts, infos)]
    entries = [i for i in range(directory, len(data) - 3) if data[i:i + 4] == b"PK\x01\x02"]
    end = data.rfind(b"PK\x05\x06")

    def flip(position):
        out = bytearray(data)
        bit = rng.randrange(8)
        out[position] ^= 1 << bit
        return out, f"bit {bit} of byte {position}"

    def field_value(width):
        return rng.choice([0, 1, 8, 12, 14, 99, 2 ** (8 * width) - 1, rng.randrange(2 ** (8 * width))])

    for kind, count in PER_KIND.items():
        for _ in range(count):
            if kind == "data bit flip":  # anywhere in a member's deflate stream (mostly the images)
                start, stop, member = rng.choices(spans, weights=[b - a + 200 for a, b, _ in spans])[0]
                out, what = flip(rng.randrange(start, stop))
                what += f" ({member})"
            elif kind == "member start bit flip":  # the first bytes inflate to the .npy header
                start, stop, member = rng.choice(spans)
                out, what = flip(rng.randrange(start, min(stop, start + 48)))
                what += f" ({member})"
            elif kind == "directory bit flip":  # the central directory and its end record
                out, what = flip(rng.randrange(directory, len(data)))
            elif kind == "header field":
                table, base, where = rng.choice([
                    (_DIRECTORY_FIELDS, rng.choice(entries), "directory entry"),
                    (_LOCAL_FIELDS, rng.choice(infos).header_offset, "local header"),
                    (_END_FIELDS, end, "end record")])
                name = rng.choice(sorted(table))
                offset, width = table[name]
                value = field_value(width)
                out = bytearray(data)
                out[base + offset:base + offset + width] = value.to_bytes(width, "little")
                what = f"{where} at byte {base}: {name} = {value}"
            elif kind == "truncation":
                length = rng.choice([rng.randrange(len(data)), rng.randrange(directory, len(data))])
                out, what = bytearray(data[:length]), f"cut to {length} of {len(data)} bytes"
            else:  # zeroed run, in a member or in the directory
                position = rng.choice([rng.randrange(len(data)), rng.randrange(directory, len(data))])
                length = rng.randrange(1, 65)
                out = bytearray(data)
                out[position:position + length] = bytes(len(out[position:position + length]))
                what = f"{length} bytes zeroed at byte {position}"
            if bytes(out) != data:
                yield f"{kind}: {what}", bytes(out)


def test_every_mutation_builds_equal_rows_or_fails_with_the_clear_error(tmp_path):
    original = _original(tmp_path)
    cases = []
    for number, (description, data) in enumerate(mutations(original.read_bytes())):
        folder = tmp_path / f"m{number:03d}"
        folder.mkdir()
        (folder / FILE).write_bytes(data)
        # every other build reads the images through the access-point reader (deflate_index) instead of zipfile
        cases.append({"description": description, "data_dir": str(folder),
                      "cache_dir": str(tmp_path / f"c{number:03d}"), "small_span": number % 2 == 1})
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"original": str(original), "cases": cases}))
    results_file = tmp_path / "results.jsonl"
    env = dict(os.environ, HF_HOME=str(tmp_path / "hf"), PYTHONPATH=os.pathsep.join(
        [str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    worker = subprocess.run([sys.executable, "-m", "tests.integration.test_damaged_releases", str(plan),
                             str(results_file)], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=BUILD_TIMEOUT * 3 + 3 * len(cases))
    results = [json.loads(line) for line in results_file.read_text().splitlines()] if results_file.exists() else []
    if worker.returncode != 0 or len(results) != len(cases):
        hung = cases[len(results)]["description"] if len(results) < len(cases) else "?"
        pytest.fail(f"the worker stopped at mutation {len(results)} ({hung}), exit {worker.returncode}:\n"
                    f"{worker.stderr[-3000:]}")
    problems = [f"{case['description']}: {result['problem']}" for case, result in zip(cases, results)
                if result.get("problem")]
    assert not problems, "\n".join(problems)
    outcomes = [result["outcome"] for result in results]
    summary = {outcome: outcomes.count(outcome) for outcome in sorted(set(outcomes))}
    print(f"{len(cases)} mutations of {original}: {summary}")
    assert set(outcomes) <= {"equal", "ReleaseFileError"}
    assert outcomes.count("ReleaseFileError") >= len(cases) // 2  # deflate and CRC-32 catch nearly all damage


def test_the_cli_reports_a_damaged_directory_in_one_paragraph(tmp_path, capsys):
    """The case a user met: a directory entry naming a compression method zipfile does not know."""
    from medmnist_plus_common.cli.main import main

    data = bytearray(_original(tmp_path).read_bytes())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        directory = archive.start_dir
    data[directory + 10:directory + 12] = (99).to_bytes(2, "little")  # train_images: method 99 (AES)
    folder = tmp_path / "damaged"
    folder.mkdir()
    (folder / FILE).write_bytes(bytes(data))
    cache_dir = tmp_path / "cache"
    code = main(["build", CONFIG, "--data-dir", str(folder), "--cache-dir", str(cache_dir), "--no-checks"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and err.rstrip().endswith(errors[0]), err  # one paragraph, last
    assert str(folder / FILE) in errors[0] and "compression method 99" in errors[0]
    assert "download it again" in errors[0]
    assert not _complete_builds(cache_dir)


def test_a_damaged_member_is_called_damaged_even_where_its_header_looks_wrong(tmp_path):
    """A header is read before its member's CRC-32 is checked (at the member's end): a damaged header that still
    parses (here uint8 images read as int8) is reported as damage, not as a file of the wrong dtype."""
    from medmnist_plus_common.catalog import load_catalog
    from medmnist_plus_common.errors import ReleaseFileError
    from medmnist_plus_common.release.reader import check_release
    from tests.fakes.releases import official_arrays

    facts = load_catalog()["breastmnist"]
    arrays = official_arrays(facts, 28, {"train": 50, "validation": 2, "test": 3})
    path = tmp_path / FILE
    np.savez(path, **arrays)  # stored members: the header bytes can be changed in place
    data = path.read_bytes()
    assert data.find(b"'descr': '|u1'") < data.find(b"val_images.npy")  # the first one is train_images'
    path.write_bytes(data.replace(b"'descr': '|u1'", b"'descr': '|i1'", 1))  # its CRC-32 not updated
    with pytest.raises(ReleaseFileError, match=r"breastmnist\.npz: array 'train_images' is corrupt \(Bad CRC-32"
                                               r".*download it again"):
        check_release(str(path), facts, 28, strict=False)
    np.savez(path, **dict(arrays, train_images=arrays["train_images"].astype(np.int8)))  # a true int8 file
    with pytest.raises(ReleaseFileError, match=r"train_images\.npy has dtype int8, but .* are uint8"):
        check_release(str(path), facts, 28, strict=False)


def _complete_builds(cache_dir) -> list:
    """Folders that look like a finished build (datasets writes dataset_info.json last) or hold Arrow shards."""
    found = []
    for folder, _, files in os.walk(cache_dir):
        if "dataset_info.json" in files or any(f.endswith(".arrow") for f in files):
            found.append(folder)
    return found


# --- the worker (its own process, so that a hang in C code can be ended) ---------------------------------------

def _check_equal(built, reference) -> str:
    """'' if every split's rows equal the original's arrays, else what differs."""
    from medmnist_plus_common.catalog import SPLITS
    from medmnist_plus_common.release.reader import member_name

    if sorted(built) != sorted(SPLITS):
        return f"splits {sorted(built)}"
    for split in SPLITS:
        rows = built[split].with_format("numpy")[:]
        images, labels = reference[member_name(split, "images")], reference[member_name(split, "labels")]
        if not np.array_equal(rows["index"], np.arange(len(images))):
            return f"{split}: indices differ"
        if not np.array_equal(np.stack(list(rows["image"])), images):
            return f"{split}: pixels differ"
        if not np.array_equal(rows["label"], labels[:, 0]):
            return f"{split}: labels differ"
    return ""


def _worker(plan_file: str, results_file: str) -> None:
    import faulthandler
    import logging

    import datasets

    from builders import MedMNISTPlus
    from medmnist_plus_common.errors import ReleaseFileError
    from medmnist_plus_common.release import deflate_index

    datasets.disable_progress_bars()
    logging.disable(logging.WARNING)  # the MD5 and row warnings of no_checks builds
    plan = json.loads(Path(plan_file).read_text())
    with np.load(plan["original"]) as arrays:
        reference = {name: arrays[name] for name in arrays.files}
    span = deflate_index.SPAN
    with open(results_file, "w") as out:
        for case in plan["cases"]:
            deflate_index.SPAN = 2**16 if case["small_span"] else span
            path = os.path.join(case["data_dir"], FILE)
            result = {}
            faulthandler.dump_traceback_later(BUILD_TIMEOUT, exit=True)
            try:
                builder = MedMNISTPlus(config_name=CONFIG, data_dir=case["data_dir"], cache_dir=case["cache_dir"])
                builder.download_and_prepare(verification_mode="no_checks")
                difference = _check_equal(builder.as_dataset(), reference)
                result = {"outcome": "equal"} if not difference else {
                    "outcome": "different", "problem": f"built without an error, but {difference}"}
            except ReleaseFileError as err:
                message = str(err)
                result = {"outcome": "ReleaseFileError", "message": message}
                if path not in message or "download it again" not in message:
                    result["problem"] = f"the error does not name the file and what to do: {message}"
                elif _complete_builds(case["cache_dir"]):
                    result["problem"] = f"a failed build left {_complete_builds(case['cache_dir'])}"
            except Exception as err:  # noqa: BLE001 (what the test is about)
                import traceback

                result = {"outcome": type(err).__name__, "problem": "".join(
                    traceback.format_exception(type(err), err, err.__traceback__)[-3:])}
            finally:
                faulthandler.cancel_dump_traceback_later()
            out.write(json.dumps(result) + "\n")
            out.flush()


if __name__ == "__main__":
    _worker(sys.argv[1], sys.argv[2])
