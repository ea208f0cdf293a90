"""PyTorch dataset classes (this module imports torch; medmnist_plus_common.training imports it only on use)."""

from __future__ import annotations

import torch
from torch.utils.data import IterableDataset, get_worker_info

from .training import _fixed_shape_values, _png_values, arrow_label_values, channels_first


class StreamBatches(IterableDataset):
    """Uint8 batches straight from the Arrow record batches of a ``datasets`` stream (see ``stream_loader``)."""

    def __init__(self, stream, batch_size: int):
        self.stream, self.batch_size = stream, batch_size
        self.column = "volume" if "volume" in stream.features else "image"
        self.shape = getattr(stream.features[self.column], "shape", None)  # None for PNG images

    def set_epoch(self, epoch: int) -> None:
        self.stream.set_epoch(epoch)

    def __iter__(self):
        stream = self.stream
        worker = get_worker_info()
        if worker is not None and worker.num_workers > 1:
            from datasets.distributed import split_dataset_by_node

            stream = split_dataset_by_node(stream, rank=worker.id, world_size=worker.num_workers)
        for table in stream.with_format("arrow").iter(batch_size=self.batch_size):
            column = table.column(self.column)
            if self.shape is None:
                pixels = _png_values(column.combine_chunks().field("bytes").to_pylist())
            else:
                pixels = _fixed_shape_values(column, tuple(self.shape)).astype("uint8", copy=False)
            yield {
                "images": torch.from_numpy(channels_first(pixels, self.column)),
                "labels": torch.from_numpy(arrow_label_values(table.column("label"))),
                "index": torch.from_numpy(table.column("index").to_numpy().copy()),
            }
