"""PyTorch dataset classes (this module imports torch; medmnist_plus_common.training imports it only on use)."""

from __future__ import annotations

from typing import Iterator, Optional

import numpy as np
import pyarrow as pa
import torch
from torch.utils.data import IterableDataset, get_worker_info

from ..hf.features import channels_first_image, channels_last_image
from ..hf.arrow_values import arrow_label_values, decode_png, fixed_shape_values


def new_batch_tensor(shape, dtype=torch.uint8) -> torch.Tensor:
    """An uninitialised tensor; in a DataLoader worker it lives in shared memory, so handing it over copies nothing."""
    tensor = torch.empty(shape, dtype=dtype)
    return tensor.share_memory_() if get_worker_info() is not None else tensor


class _Rows:
    """The rows of one Arrow record batch as numpy: pixels ((n, *shape) uint8, or a list of PNG bytes), labels, index."""

    def __init__(self, table, column: str, shape: Optional[tuple]):
        pixels = table.column(column)
        if shape is None:
            self.pixels = pixels.combine_chunks().field("bytes").to_pylist()
        else:
            self.pixels = fixed_shape_values(pixels, shape).astype(np.uint8, copy=False)
        self.labels = arrow_label_values(table.column("label"))
        self.index = table.column("index").to_numpy()

    def __len__(self) -> int:
        return len(self.index)


class _BatchWriter:
    """Copies chosen rows of a row store (a record batch, or the shuffle buffer) into uint8 batches.

    Each row is copied once, straight into the batch tensor: N x C x H x W (2D), N x 1 x D x H x W (3D).
    """

    def __init__(self, batch_size: int, column: str, shape: Optional[tuple], image_shape: tuple, label_shape: tuple,
                 label_dtype):
        self.batch_size, self.column, self.shape = batch_size, column, shape
        self.image_shape = image_shape  # per example, as delivered
        self.label_shape, self.label_dtype = label_shape, label_dtype
        self._new()

    def _new(self) -> None:
        self.images = new_batch_tensor((self.batch_size,) + self.image_shape)
        self.labels = np.empty((self.batch_size,) + self.label_shape, dtype=self.label_dtype)
        self.index = np.empty(self.batch_size, dtype=np.int64)
        self.filled = 0

    def add(self, store, rows: np.ndarray) -> Iterator[dict]:
        """Copy ``store``'s rows ``rows`` (in that order) into batches; yield each batch when it is full."""
        while len(rows):
            take, rows = rows[: self.batch_size - self.filled], rows[self.batch_size - self.filled:]
            start, end = self.filled, self.filled + len(take)
            pixels = self.images.numpy()[start:end]
            if self.shape is None:  # PNG: decode straight into the batch (an H x W [x C] view of C x H x W)
                for position, row in enumerate(take):
                    decode_png(store.pixels[row], out=channels_last_image(pixels[position]))
            else:
                out = pixels[:, 0] if self.column == "volume" else pixels
                np.take(store.pixels, take, axis=0, out=out, mode="clip")  # indices are valid; "clip" avoids a temporary
            self.labels[start:end] = store.labels[take]
            self.index[start:end] = store.index[take]
            self.filled = end
            if self.filled == self.batch_size:
                yield self._batch(self.batch_size)
                self._new()

    def flush(self) -> Iterator[dict]:
        if self.filled:
            yield self._batch(self.filled)

    def _batch(self, rows: int) -> dict:
        return {"images": self.images[:rows], "labels": torch.from_numpy(self.labels[:rows]),
                "index": torch.from_numpy(self.index[:rows])}


class _ShuffleBuffer:
    """A shuffle buffer of ``size`` rows held as compact copies: uint8 pixels in one preallocated array (or PNG bytes).

    Like ``tf.data``'s buffer: each incoming row replaces a uniformly chosen buffered row, which goes out. Memory is
    ``size`` rows, whatever the record batch sizes; each row is copied once in and once out.
    """

    def __init__(self, size: int, rng: np.random.Generator):
        self.size, self.rng, self.filled = size, rng, 0
        self.pixels = self.labels = self.index = None

    def _allocate(self, rows: _Rows) -> None:
        self.pixels = [None] * self.size if isinstance(rows.pixels, list) else \
            np.empty((self.size,) + rows.pixels.shape[1:], dtype=np.uint8)
        self.labels = np.empty((self.size,) + rows.labels.shape[1:], dtype=rows.labels.dtype)
        self.index = np.empty(self.size, dtype=np.int64)

    def _put(self, slots: np.ndarray, rows: _Rows, sources: np.ndarray) -> None:
        if isinstance(self.pixels, list):
            for slot, source in zip(slots, sources):
                self.pixels[slot] = rows.pixels[source]
        else:
            self.pixels[slots] = rows.pixels[sources]
        self.labels[slots] = rows.labels[sources]
        self.index[slots] = rows.index[sources]

    def push(self, rows: _Rows, writer: _BatchWriter) -> Iterator[dict]:
        if self.pixels is None:
            self._allocate(rows)
        start = min(len(rows), self.size - self.filled)
        self._put(np.arange(self.filled, self.filled + start), rows, np.arange(start))
        self.filled += start
        for first in range(start, len(rows), self.size):  # the buffer is full: swap rows out
            sources = np.arange(first, min(len(rows), first + self.size))
            slots = self.rng.choice(self.size, size=len(sources), replace=False)
            yield from writer.add(self, slots)
            self._put(slots, rows, sources)

    def drain(self, writer: _BatchWriter) -> Iterator[dict]:
        yield from writer.add(self, self.rng.permutation(self.filled))
        self.filled = 0


class StreamBatches(IterableDataset):
    """Uint8 batches straight from the Arrow record batches of a ``datasets`` stream (see ``stream_loader``).

    Each DataLoader worker reads its own shards (``split_dataset_by_node`` over the workers). With
    ``shuffle_buffer``, the shard order is shuffled every epoch (``datasets`` does this for epochs >= 1, so the
    epoch handed to the stream is offset by one and by the seed) and rows are mixed through a
    :class:`_ShuffleBuffer` of that many rows per worker.
    """

    def __init__(self, stream, batch_size: int, shuffle_buffer: int = 0, seed: int = 0):
        self.stream, self.batch_size = stream, batch_size
        self.shuffle_buffer, self.seed = shuffle_buffer, seed
        self.column = "volume" if "volume" in stream.features else "image"
        shape = getattr(stream.features[self.column], "shape", None)  # None for PNG images
        self.shape = None if shape is None else tuple(shape)
        # shared with persistent DataLoader workers, so set_epoch() in the main process reaches them
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()

    def set_epoch(self, epoch: int) -> None:
        self._epoch.fill_(epoch)

    def _stream_for_this_worker(self):
        """This worker's shards, as a new stream (the caller's stream and its epoch are left alone)."""
        from datasets.distributed import split_dataset_by_node

        worker = get_worker_info()
        worker_id, workers = (worker.id, worker.num_workers) if worker is not None else (0, 1)
        stream = split_dataset_by_node(self.stream, rank=worker_id, world_size=workers)
        epoch = self.stream.epoch + int(self._epoch)  # set on the stream (as datasets users do) or on this object
        stream.set_epoch(1 + epoch + 1_000_003 * self.seed if self.shuffle_buffer else epoch)
        return stream, epoch, worker_id

    def _example_layout(self, rows: _Rows) -> tuple:
        if self.shape is None:  # PNG: H x W [x C] -> C x H x W
            return channels_first_image(decode_png(rows.pixels[0])).shape
        return ((1,) + self.shape) if self.column == "volume" else self.shape

    def __iter__(self):
        stream, epoch, worker_id = self._stream_for_this_worker()
        writer: Optional[_BatchWriter] = None
        buffer = None
        if self.shuffle_buffer:
            rng = np.random.default_rng([self.seed, epoch, worker_id])
            buffer = _ShuffleBuffer(self.shuffle_buffer, rng)
        arrow_pool = pa.default_memory_pool()
        for table in stream.with_format("arrow").iter(batch_size=self.batch_size):
            rows = _Rows(table, self.column, self.shape)
            del table
            # Decoding nested-list Parquet (3D) leaves large freed blocks cached in Arrow's allocator: hand them
            # back, or each worker keeps ~150 MB more (measured at 64^3)
            arrow_pool.release_unused()
            if writer is None:
                writer = _BatchWriter(self.batch_size, self.column, self.shape, self._example_layout(rows),
                                      rows.labels.shape[1:], rows.labels.dtype)
            if buffer is None:
                yield from writer.add(rows, np.arange(len(rows)))
            else:
                yield from buffer.push(rows, writer)
        if writer is not None:
            if buffer is not None:
                yield from buffer.drain(writer)
            yield from writer.flush()
