"""Benchmarks write the committed results only when asked (--write), and --configs limits what they prepare."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def run(script, *args, cwd=None):
    # the repository on the path: a copied script still finds tests.fakes (the raw collections)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(BENCHMARKS.parent),
                                                                     os.environ.get("PYTHONPATH")])))
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=600,
                          cwd=cwd, env=env)


def finished(result) -> bool:
    """Exit 0, or (rarely, on a loaded machine) pyarrow's thread-pool race at interpreter exit, after the script
    has done all its work: a C++ abort with exactly this message. Nothing else counts."""
    return result.returncode == 0 or (
        result.returncode == -6 and result.stderr.strip() == "terminate called without an active exception")


@pytest.mark.slow
def test_loader_throughput_prepares_only_the_configs_asked_for(tmp_path):
    result = run(BENCHMARKS / "loader_throughput.py", "--configs", "organmnist3d-64", "--plan",
                 "--workdir", str(tmp_path / "work"))
    assert result.returncode == 0, result.stderr
    plan = result.stdout
    assert f"release file: {tmp_path / 'work' / 'release' / 'organmnist3d_64.npz'} (1742 rows)" in plan
    assert "build (png and raw) and push to the local Hub: organmnist3d-64\n" in plan
    assert "dermamnist" not in plan  # the 1.3 GB 224 px release is neither written nor pushed
    assert "results: printed only (--write saves them)" in plan
    assert not (tmp_path / "work").exists()  # a plan prepares nothing

    both = run(BENCHMARKS / "loader_throughput.py", "--plan", "--write", "--workdir", str(tmp_path / "work"))
    assert "dermamnist_224.npz" in both.stdout and "results: merged into " in both.stdout
    wrong = run(BENCHMARKS / "loader_throughput.py", "--configs", "pathmnist-224", "--plan")
    assert wrong.returncode == 2 and "choose among dermamnist-224, organmnist3d-64" in wrong.stderr


@pytest.mark.slow
def test_parquet_decode_writes_its_results_only_with_write(tmp_path):
    copy = tmp_path / "benchmarks"  # a copy, so the run cannot touch the committed results
    copy.mkdir()
    shutil.copy(BENCHMARKS / "parquet_decode.py", copy)
    printed = run(copy / "parquet_decode.py", cwd=tmp_path)
    assert finished(printed), printed.stderr
    assert "| one binary value per row (raw voxels) |" in printed.stdout
    assert not (copy / "results").exists()
    written = run(copy / "parquet_decode.py", "--write", cwd=tmp_path)
    assert finished(written), written.stderr
    saved = json.loads((copy / "results" / "parquet_decode.json").read_text())
    assert [r["layout"] for r in saved["results"]][-1] == "one binary value per row (raw voxels)"


@pytest.mark.slow
def test_raw_regenerate_throughput_writes_its_results_only_with_write(tmp_path):
    copy = tmp_path / "benchmarks"  # a copy, so the run cannot touch the committed results
    copy.mkdir()
    for name in ("raw_regenerate_throughput.py", "proc_memory.py"):
        shutil.copy(BENCHMARKS / name, copy)
    args = ["--images", "16", "--flags", "bloodmnist,tissuemnist", "--workdir", str(tmp_path / "work"), "--synthetic"]
    printed = run(copy / "raw_regenerate_throughput.py", *args, cwd=tmp_path)
    assert printed.returncode == 0, printed.stderr
    assert "| bloodmnist | 16 (360x363 RGB JPEG) |" in printed.stdout and "| tissuemnist | 16 " in printed.stdout
    assert not (copy / "results").exists()
    written = run(copy / "raw_regenerate_throughput.py", *args, "--write", cwd=tmp_path)
    assert written.returncode == 0, written.stderr
    saved = json.loads((copy / "results" / "raw_regenerate_throughput_synthetic.json").read_text())
    assert saved["content"] == "synthetic"
    assert list(saved["results"]) == ["bloodmnist", "tissuemnist"]
    blood = saved["results"]["bloodmnist"]
    assert blood["regenerate_224_np1"]["images"] == blood["decode_floor"]["images"] == 16
    assert blood["regenerate_all_sizes_np1"]["output_bytes"] > blood["regenerate_224_np1"]["output_bytes"]
    assert blood["regenerate_224_np1"]["peak_rss_largest_process"] > 50 * 2**20


@pytest.mark.parametrize("script", ["build_memory_and_speed.py", "loader_throughput.py", "parquet_decode.py",
                                    "raw_regenerate_throughput.py", "png_encodings.py", "first_use.py",
                                    "align_chestmnist.py"])
def test_every_benchmark_that_saves_results_has_a_write_switch(script):
    source = (BENCHMARKS / script).read_text()
    assert '"--write"' in source and "if args.write:" in source


def test_realistic_content_is_cut_from_the_genuine_images_or_says_where_they_are_missing(tmp_path, monkeypatch):
    import numpy as np

    sys.path.insert(0, str(BENCHMARKS))
    try:
        import realistic
    finally:
        sys.path.remove(str(BENCHMARKS))
    monkeypatch.setenv("MEDMNIST_PLUS_GENUINE_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(realistic.GenuineDataMissing, match="ham10000"):
        realistic.genuine_dir()
    monkeypatch.delenv("MEDMNIST_PLUS_GENUINE_DIR")
    if not (realistic.DEFAULT_GENUINE_DIR / "ham10000").is_dir():
        pytest.skip("../shared/data is absent")
    rgb, gray = realistic.realistic_images(224, 3, 3, seed=1), realistic.realistic_images(28, 3, 1, seed=1)
    assert rgb.shape == (3, 224, 224, 3) and gray.shape == (3, 28, 28) and rgb.dtype == gray.dtype == np.uint8
    assert rgb.std() > 10 and not np.array_equal(rgb[0], rgb[1])
    big = realistic.realistic_pixels(np.random.default_rng(0), 1824, 1736, 3)  # larger than any source
    assert big.shape == (1736, 1824, 3)


@pytest.mark.parametrize("script", sorted(p.name for p in BENCHMARKS.glob("*.py")
                                          if p.name not in ("proc_memory.py", "realistic.py")))
def test_every_benchmark_starts(script):
    # a benchmark is run by hand, so nothing else notices when a change to the package breaks its imports
    result = run(BENCHMARKS / script, "--help")
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout
