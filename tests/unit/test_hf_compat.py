"""The private datasets / huggingface_hub pieces live in one module, checked once, with one clear error."""

import ast
import re
from pathlib import Path

import datasets
import huggingface_hub
import pytest

from medmnist_plus_common.hf import internals as hf_compat
from medmnist_plus_common.cli.main import main

from tests.fakes.releases import write_fake_release

PACKAGE = Path(hf_compat.__file__).parent.parent  # the whole package but hf/internals.py
# Private pieces (and process-wide patches) that only hf_compat may touch.
PRIVATE = re.compile(r"datasets\.config\.(?!HF_HUB_OFFLINE\b|DOWNLOADED_DATASETS_PATH\b)\w+\s*=|_estimate_nbytes|"
                     r"\._indices\b|\.data\.table\b|huggingface_hub\.constants|hub_constants|datasets\.load\.|"
                     r"from datasets import load\b|from datasets import inspect|convert_file_size_to_int|"
                     r"arrow_writer|DatasetInfosDict|MetadataConfigs|MAX_ROW_GROUP_SIZE|dataset_module_factory\s*=|"
                     r"from datasets\.builder import")


@pytest.fixture
def recheck():
    """Let a test change what check() sees, and forget its verdict afterwards."""
    hf_compat.check.cache_clear()
    yield
    hf_compat.check.cache_clear()


def test_the_installed_versions_pass():
    assert hf_compat.problems() == []
    hf_compat.check()


@pytest.mark.parametrize("module", sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                                           if p.name != "internals.py"))
def test_no_other_module_touches_the_private_pieces(module):
    tree = ast.parse((PACKAGE / module).read_text())
    for node in ast.walk(tree):  # code only: docstrings out (comments are not in the tree)
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            body[0] = ast.Pass()
    code = ast.unparse(tree)
    assert PRIVATE.findall(code) == [], module


def test_a_missing_piece_and_a_version_out_of_range_in_one_message(monkeypatch, recheck):
    monkeypatch.delattr(datasets.Dataset, "_estimate_nbytes")
    monkeypatch.setattr(huggingface_hub, "__version__", "3.1.0")
    with pytest.raises(hf_compat.IncompatibleLibraryError) as error:
        hf_compat.check()
    message = str(error.value)
    assert "datasets.Dataset._estimate_nbytes is missing" in message
    assert "huggingface_hub 3.1.0 is outside the supported 2.4 to <3.0" in message
    assert "tested with datasets 5.2 and huggingface_hub 2.4" in message and hf_compat.INSTALL in message


def test_the_check_runs_once_per_process(monkeypatch, recheck):
    hf_compat.check()
    monkeypatch.setattr(datasets, "__version__", "9.0.0")
    hf_compat.check()  # the verdict is kept: no second inspection
    hf_compat.check.cache_clear()
    with pytest.raises(hf_compat.IncompatibleLibraryError, match="datasets 9.0.0 is outside"):
        hf_compat.check()


def test_the_cli_prints_the_incompatibility_as_one_paragraph(tmp_path, monkeypatch, recheck, capsys):
    write_fake_release(tmp_path / "release", "breastmnist", 28, {"train": 3, "validation": 2, "test": 2})
    monkeypatch.delattr(datasets.Dataset, "_estimate_nbytes")
    code = main(["export", "--out", str(tmp_path / "out"), "--configs", "breastmnist-28", "--data-dir",
                 str(tmp_path / "release"), "--cache-dir", str(tmp_path / "cache"), "--no-checks"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "datasets.Dataset._estimate_nbytes is missing" in lines[0], err
