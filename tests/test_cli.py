import subprocess
import sys

import pytest

from medmnist_plus_common.cli import main
from medmnist_plus_common.catalog import load_catalog

from .conftest import write_fake_release


def test_list_shows_every_config_with_counts(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "60 configs in 18 datasets." in out
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


def test_demo_runs_offline_and_says_it_is_synthetic(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "medmnist_plus_common.cli", "demo", "--workdir", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("SYNTHETIC DATA")
    assert result.stdout.count("every pixel equals the release arrays: True") == 2
    assert "[SYNTHETIC] bloodmnist-64" in result.stdout and "[SYNTHETIC] organmnist3d-28" in result.stdout


@pytest.mark.parametrize("argv", [["--help"], ["build", "--help"]])
def test_help(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0
    assert "medmnist-plus" in capsys.readouterr().out
