import argparse
import importlib.metadata
import os
import re
import subprocess
import sys

import pytest

from medmnist_plus_common.cli.main import build_parser, main
from medmnist_plus_common.catalog import load_catalog

from tests.fakes.releases import write_fake_release


def test_list_shows_every_config_with_counts(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "60 configs in 18 datasets: the official sizes" in out and "any size from 8 to 1024" in out
    for name in load_catalog().config_names():
        assert f"\n{name} " in out
    assert "89,996 / 10,004 / 7,180" in out and "pathmnist_224.npz" in out


def test_info_shows_labels_license_and_files(capsys):
    assert main(["info", "dermamnist"]) == 0
    out = capsys.readouterr().out
    assert "CC BY-NC 4.0" in out and "melanoma" in out and "8974907d8e169bef5f5b96bc506ae45d" in out


def test_build_from_a_data_dir(tmp_path, capsys):
    write_fake_release(tmp_path / "release", "retinamnist", 64, {"train": 4, "validation": 2, "test": 3})
    code = main(["build", "retinamnist-64", "--data-dir", str(tmp_path / "release"), "--cache-dir",
                 str(tmp_path / "cache"), "--no-checks", "--num-proc", "1"])
    assert code == 0
    out = capsys.readouterr().out
    assert "Built retinamnist-64" in out and "test" in out and " 3 examples" in out


def test_build_errors_are_one_clear_line(tmp_path, capsys):
    assert main(["build", "retinamnist-65"]) == 2
    assert "Did you mean 'retinamnist-64'" in capsys.readouterr().err
    assert main(["build", "retinamnist-64", "--data-dir", str(tmp_path), "--cache-dir", str(tmp_path / "c")]) == 2
    assert "retinamnist_64.npz: not found" in capsys.readouterr().err


def _env_with_progress_bars(**extra):
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_DISABLE_PROGRESS_BARS"}
    env.update(extra)
    return env


@pytest.mark.slow
def test_demo_runs_offline_says_it_is_synthetic_and_cleans_up(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "medmnist_plus_common.cli", "demo"],
        capture_output=True, text=True, timeout=300, env=_env_with_progress_bars(TMPDIR=str(tmp_path)),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("SYNTHETIC DATA")
    assert result.stdout.count("every pixel equals the release arrays: True") == 2
    assert "[SYNTHETIC] bloodmnist-64" in result.stdout and "[SYNTHETIC] organmnist3d-28" in result.stdout
    assert list(tmp_path.iterdir()) == []  # its temporary folder is gone
    assert "WARNING" not in result.stderr  # the sample's expected MD5/row-count warnings are silenced
    # progress bars end at the sample's own row counts (24 / 8 / 8), not at 0-2 % of the official totals
    bars = re.findall(r"Generating (\w+) split: +(\d+)%\|[^|]*\| (\d+)/(\d+)", result.stderr)
    finals = {(split, done, total) for split, percent, done, total in bars if done == total}
    assert finals == {("train", "24", "24"), ("validation", "8", "8"), ("test", "8", "8")}, result.stderr
    assert not [bar for bar in bars if bar[3] not in ("24", "8")], result.stderr


def test_our_warnings_reach_stderr_with_their_level_from_every_sub_package(tmp_path, capsys):
    """The CLI's handler sits on the package's logger, so a warning of any module below it is printed once."""
    write_fake_release(tmp_path / "release", "breastmnist", 28, {"train": 3, "validation": 2, "test": 2})
    assert main(["build", "breastmnist-28", "--data-dir", str(tmp_path / "release"), "--cache-dir",
                 str(tmp_path / "cache"), "--no-checks"]) == 0
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("WARNING ")]
    assert warnings and any("breastmnist.npz" in line for line in warnings), err  # release/ and hf/ loggers


def test_demo_with_a_workdir_keeps_it(tmp_path, capsys):
    assert main(["demo", "--workdir", str(tmp_path)]) == 0
    assert (tmp_path / "release" / "bloodmnist_64.npz").is_file() and (tmp_path / "cache").is_dir()
    assert "is removed" not in capsys.readouterr().out


def test_help_lists_every_command_and_version_matches_the_package(capsys):
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for name, command in commands.items():
        assert re.search(rf"^    {re.escape(name)}\s", out, re.M), name  # each command with its help line
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"medmnist-plus {importlib.metadata.version('medmnist-plus')}"


def test_info_accepts_a_config_name(capsys):
    assert main(["info", "breastmnist-28"]) == 0
    out = capsys.readouterr().out
    assert "BreastMNIST (breastmnist)" in out and "* breastmnist-28 " in out and "  breastmnist-64 " in out
    assert "* breastmnist-28: 28x28 uint8 per example" in out
    assert main(["info", "breastmnist-29"]) == 2
    assert "Did you mean 'breastmnist-28'" in capsys.readouterr().err


def test_a_cached_build_says_so(tmp_path, capsys):
    write_fake_release(tmp_path / "release", "retinamnist", 28, {"train": 4, "validation": 2, "test": 3})
    argv = ["build", "retinamnist-28", "--data-dir", str(tmp_path / "release"), "--cache-dir", str(tmp_path / "c"),
            "--no-checks"]
    assert main(argv) == 0
    assert capsys.readouterr().out.startswith("Built retinamnist-28 in ")
    assert main(argv) == 0
    assert capsys.readouterr().out.startswith("Already built: retinamnist-28 in ")
    assert main(argv + ["--force"]) == 0
    assert capsys.readouterr().out.startswith("Built retinamnist-28 in ")


@pytest.mark.slow
def test_num_proc_warnings_are_printed_once(tmp_path):
    write_fake_release(tmp_path / "release", "retinamnist", 28, {"train": 4, "validation": 2, "test": 3})
    result = subprocess.run(
        [sys.executable, "-m", "medmnist_plus_common.cli", "build", "retinamnist-28", "--data-dir",
         str(tmp_path / "release"), "--cache-dir", str(tmp_path / "c"), "--no-checks", "--num-proc", "2"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    for split in ("train", "validation", "test"):
        assert result.stderr.count(f"back to 1 for the {split} split") == 1, result.stderr
    assert result.stderr.count("the splits have train 4, validation 2, test 3 rows") == 1, result.stderr  # ours, once
    assert result.stderr.count("which warn instead of failing") == 1, result.stderr  # the reason, said once


@pytest.mark.slow
@pytest.mark.parametrize("argv", [["--help"], ["list"], ["info", "breastmnist-28"]])
def test_catalog_commands_do_not_import_datasets(argv):
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "medmnist_plus_common.cli", *argv],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert "medmnist_plus_common.catalog" in imported  # the listing is real
    assert not {name for name in imported if name.split(".")[0] in ("datasets", "huggingface_hub", "pyarrow", "numpy")}


@pytest.mark.slow
def test_load_dataset_works_when_the_package_is_imported_before_datasets(tmp_path):
    write_fake_release(tmp_path / "release", "breastmnist", 28, {"train": 4, "validation": 2, "test": 3})
    script = f"""
import sys
import medmnist_plus_common
assert "datasets" not in sys.modules
import datasets
test = datasets.load_dataset("medmnist_plus", "breastmnist-28", data_dir={str(tmp_path / "release")!r},
                             cache_dir={str(tmp_path / "cache")!r}, verification_mode="no_checks", split="test")
print(test.num_rows, datasets.get_dataset_config_names("breastmnist"))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[-2] == "3 ['28', '64', '128', '224']"


def test_publishing_nothing_is_one_clear_error(tmp_path, capsys):
    assert main(["export", "--configs", " , ", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "error: Name the configs to publish" in err and "--all" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", [["list"], ["info", "dermamnist"]])
def test_a_closed_pipe_ends_quietly(command):
    """`medmnist-plus list | head -1`: the reader is gone before we write (the race made deterministic)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run([sys.executable, "-m", "medmnist_plus_common.cli", *command], stdout=write_end,
                                stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(write_end)
    assert result.returncode == 0 and result.stderr == "", (result.returncode, result.stderr)
