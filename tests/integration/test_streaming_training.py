"""Streaming into PyTorch training loops: exactly once per epoch across workers and ranks, resume, the example.

The stream comes from a folder written by `medmnist-plus export` (the same layout as the Hub repo), read by
stock `load_dataset(folder, config, streaming=True)`.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch  # the CI stage with PyTorch installed runs these with -m torch

from medmnist_plus_common.publish.push import export  # noqa: E402
from medmnist_plus_common.training import data_loader, streaming_dataset  # noqa: E402

from tests.fakes.releases import write_fake_release, write_fake_releases  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROWS = {"bloodmnist-28": {"train": 96, "validation": 8, "test": 8},
        "organmnist3d-28": {"train": 24, "validation": 4, "test": 4}}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("stream")
    arrays = write_fake_releases(root / "release", ROWS, seed=11)
    folder = root / "medmnist_plus"
    export(str(folder), list(ROWS), num_shards=8, data_dir=str(root / "release"), cache_dir=str(root / "cache"),
           no_checks=True)
    return str(folder), arrays


# Shuffled Parquet streams in datasets 5.2 sleep 5 s when an iteration ends (an Arrow thread-shutdown guard),
# so each case runs one epoch; test_shuffle_order_changes_with_the_epoch covers a second one.
@pytest.mark.slow
@pytest.mark.parametrize("world_size, epoch", [(2, 0), (3, 1)])
def test_each_example_exactly_once_per_epoch_across_workers_and_ranks(exported, world_size, epoch):
    folder, arrays = exported
    config = "bloodmnist-28"
    seen = []
    for rank in range(world_size):
        stream = streaming_dataset(folder, config, rank=rank, world_size=world_size, shuffle_buffer=32, seed=3)
        stream.set_epoch(epoch)
        for batch in data_loader(stream, batch_size=16, num_workers=2):
            assert batch["images"].dtype == torch.uint8 and batch["images"].shape[1:] == (3, 28, 28)
            assert batch["labels"].dtype == torch.int64 and batch["labels"].shape == batch["index"].shape
            for image, label, index in zip(batch["images"], batch["labels"], batch["index"].tolist()):
                expected = arrays[config]["train_images"][index].transpose(2, 0, 1)
                assert np.array_equal(image.numpy(), expected)
                assert int(label) == int(arrays[config]["train_labels"][index, 0])
            seen += batch["index"].tolist()
    assert sorted(seen) == list(range(ROWS[config]["train"])), (world_size, epoch)


@pytest.mark.slow
def test_shuffle_order_changes_with_the_epoch(exported):
    folder, _ = exported
    stream = streaming_dataset(folder, "bloodmnist-28", shuffle_buffer=32, seed=3)
    orders = []
    for epoch in (0, 1):
        stream.set_epoch(epoch)
        orders.append([example["index"] for example in stream])
    assert sorted(orders[0]) == sorted(orders[1]) == list(range(96)) and orders[0] != orders[1]


def test_3d_batches_are_n_1_d_h_w_uint8(exported):
    folder, arrays = exported
    stream = streaming_dataset(folder, "organmnist3d-28", shuffle_buffer=None)
    batches = list(data_loader(stream, batch_size=8, num_workers=2))
    indices = [i for batch in batches for i in batch["index"].tolist()]
    assert sorted(indices) == list(range(24))
    batch = batches[0]
    assert batch["images"].dtype == torch.uint8 and batch["images"].shape == (8, 1, 28, 28, 28)
    first = batch["index"][0].item()
    assert np.array_equal(batch["images"][0, 0].numpy(), arrays["organmnist3d-28"]["train_images"][first])


def test_resumed_iterable_continues_where_it_stopped(exported):
    folder, _ = exported
    stream = streaming_dataset(folder, "bloodmnist-28", shuffle_buffer=None)
    full = [example["index"] for example in stream]
    iterator = iter(stream)
    head = [next(iterator)["index"] for _ in range(37)]
    state = stream.state_dict()
    resumed = streaming_dataset(folder, "bloodmnist-28", shuffle_buffer=None)
    resumed.load_state_dict(state)
    tail = [example["index"] for example in resumed]
    assert head + tail == full == list(range(96))


@pytest.mark.slow
def test_training_example_runs_a_few_steps(exported):
    folder, _ = exported
    result = subprocess.run(
        [sys.executable, os.path.join(REPO, "examples", "train_streaming.py"), "--source", folder, "--config",
         "bloodmnist-28", "--steps", "3", "--batch-size", "16", "--shuffle-buffer", "32"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr, result.stderr  # the example runs clean
    assert "step 3:" in result.stdout and "images (16, 3, 28, 28) torch.uint8" in result.stdout
    assert "step 4:" not in result.stdout


@pytest.mark.parametrize("config, counts", [("bloodmnist-28", {"train": 40, "validation": 3, "test": 3}),
                                            ("breastmnist-64", {"train": 30, "validation": 3, "test": 3}),
                                            ("chestmnist-28", {"train": 20, "validation": 3, "test": 3}),
                                            ("nodulemnist3d-28", {"train": 12, "validation": 2, "test": 2})])
def test_arrow_batches_png_and_raw_storage_are_exact(config, counts, tmp_path):
    from medmnist_plus_common import builder_for
    from medmnist_plus_common.catalog import load_catalog
    from medmnist_plus_common.training import batch_loader

    facts, size = load_catalog().parse_config_name(config)
    _, arrays = write_fake_release(tmp_path / "release", facts.flag, size, counts, seed=2)
    expected = arrays["train_images"]
    expected = expected.transpose(0, 3, 1, 2) if expected.ndim == 4 and facts.dims == 2 else expected[:, None]
    for storage in ("png", "raw"):
        builder = builder_for(config, data_dir=str(tmp_path / "release"), cache_dir=str(tmp_path / "cache"),
                              image_storage=storage)
        builder.download_and_prepare(verification_mode="no_checks")
        train = builder.as_dataset(split="train")
        if facts.dims == 2:
            feature = train.features["image"]
            assert type(feature).__name__ == ("Image" if storage == "png" else "Array3D")
            if storage == "raw":  # stored channels first
                assert feature.shape == (facts.channels, size, size)
                assert np.array_equal(np.asarray(train[0]["image"], dtype=np.uint8), expected[0])
        seen = []
        for batch in batch_loader(train, batch_size=8, num_workers=2, shuffle=True):
            assert batch["images"].dtype == torch.uint8
            index = batch["index"].numpy()
            assert np.array_equal(batch["images"].numpy(), expected[index]), storage
            labels = arrays["train_labels"][index]
            assert np.array_equal(batch["labels"].numpy(), labels if facts.is_multilabel else labels[:, 0])
            seen += index.tolist()
        assert sorted(seen) == list(range(counts["train"]))
        view = train.shuffle(seed=1).select(range(5))  # an indices mapping over the cache file
        batch = next(iter(batch_loader(view, batch_size=5, num_workers=0, shuffle=False)))
        assert batch["index"].tolist() == view["index"][:]
        assert np.array_equal(batch["images"].numpy(), expected[batch["index"].numpy()])


def _worker_state(worker_id):
    import gc

    if gc.get_freeze_count() == 0:
        raise RuntimeError(f"worker {worker_id}: the objects it inherited are not frozen")
    os.environ["MEDMNIST_PLUS_TEST_WORKER"] = str(worker_id)


class _WorkerSeen(torch.utils.data.Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):  # an example as the loaders' collate takes it; the label says which worker made it
        return {"image": np.zeros((1, 2, 2), dtype=np.uint8), "label": int(os.environ["MEDMNIST_PLUS_TEST_WORKER"]),
                "index": i}


def test_loader_workers_freeze_what_they_inherit_and_run_the_callers_init():
    from medmnist_plus_common.training import data_loader

    loader = data_loader(_WorkerSeen(), batch_size=2, num_workers=2, worker_init_fn=_worker_state)
    batches = list(loader)
    assert sorted(i for batch in batches for i in batch["index"].tolist()) == [0, 1, 2, 3]
    assert {worker for batch in batches for worker in batch["labels"].tolist()} == {0, 1}


def test_unknown_image_storage_is_refused(tmp_path):
    from medmnist_plus_common import builder_for
    with pytest.raises(ValueError, match=r"Unknown image_storage 'jpeg'; available: \['png', 'raw'\]"):
        builder_for("bloodmnist-28", cache_dir=str(tmp_path), image_storage="jpeg")


@pytest.mark.parametrize("config, shape", [("bloodmnist-28", (3, 28, 28)), ("organmnist3d-28", (1, 28, 28, 28))])
@pytest.mark.parametrize("world_size", [1, 2])
def test_stream_loader_shuffles_exactly_once_across_workers_and_ranks(exported, config, shape, world_size):
    from medmnist_plus_common.training import stream_loader

    folder, arrays = exported
    seen = []
    for rank in range(world_size):
        stream = streaming_dataset(folder, config, rank=rank, world_size=world_size)
        for batch in stream_loader(stream, batch_size=8, num_workers=2, shuffle_buffer=6, seed=1):
            assert batch["images"].dtype == torch.uint8 and batch["images"].shape[1:] == shape
            index = batch["index"].numpy()
            expected = arrays[config]["train_images"][index]
            expected = expected.transpose(0, 3, 1, 2) if expected.ndim == 4 and len(shape) == 3 else expected[:, None]
            assert np.array_equal(batch["images"].numpy(), expected)
            assert np.array_equal(batch["labels"].numpy(), arrays[config]["train_labels"][index, 0])
            seen += index.tolist()
    assert sorted(seen) == list(range(ROWS[config]["train"]))
    assert seen != sorted(seen)  # shuffled: shard order and the buffer


def test_stream_loader_unshuffled_keeps_the_stream_order(exported):
    from medmnist_plus_common.training import stream_loader

    folder, _ = exported
    stream = streaming_dataset(folder, "organmnist3d-28")
    batches = list(stream_loader(stream, batch_size=5, num_workers=0))
    assert [len(batch["index"]) for batch in batches] == [5, 5, 5, 5, 4]
    assert [i for batch in batches for i in batch["index"].tolist()] == list(range(24))


def test_stream_loader_new_order_each_epoch_with_persistent_workers(exported):
    from medmnist_plus_common.training import stream_loader

    folder, _ = exported
    stream = streaming_dataset(folder, "bloodmnist-28")
    loader = stream_loader(stream, batch_size=16, num_workers=2, shuffle_buffer=8, seed=5)
    assert loader.persistent_workers
    orders = []
    for epoch in range(3):
        stream.set_epoch(epoch)  # reaches the running workers through shared memory
        orders.append([i for batch in loader for i in batch["index"].tolist()])
    assert all(sorted(order) == list(range(96)) for order in orders)
    assert len({tuple(order) for order in orders}) == 3


class _FakeRows:
    def __init__(self, index):
        self.index = np.asarray(index, dtype=np.int64)
        self.pixels = np.repeat(self.index.astype(np.uint8)[:, None, None], 4, axis=1).repeat(4, axis=2)
        self.labels = self.index % 3

    def __len__(self):
        return len(self.index)


def test_shuffle_buffer_holds_its_size_and_delivers_every_row_once():
    from medmnist_plus_common.training.torch_data import _BatchWriter, _ShuffleBuffer

    buffer = _ShuffleBuffer(4, np.random.default_rng(0))
    writer = _BatchWriter(5, "image", (4, 4), (4, 4), (), np.int64)
    batches = []
    for chunk in (range(0, 7), range(7, 9), range(9, 30)):  # record batches smaller and larger than the buffer
        batches += list(buffer.push(_FakeRows(list(chunk)), writer))
        assert buffer.pixels.shape == (4, 4, 4) and buffer.filled == 4
    batches += list(buffer.drain(writer)) + list(writer.flush())
    order = [i for batch in batches for i in batch["index"].tolist()]
    assert sorted(order) == list(range(30)) and order != list(range(30))
    assert [len(batch["index"]) for batch in batches] == [5] * 6
    for batch in batches:  # pixels and labels travel with their row
        expected = np.broadcast_to(batch["index"].numpy().astype(np.uint8)[:, None, None], (5, 4, 4))
        assert np.array_equal(batch["images"].numpy(), expected)
        assert np.array_equal(batch["labels"].numpy(), batch["index"].numpy() % 3)
