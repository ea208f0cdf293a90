"""Feeding MedMNIST+ into PyTorch training loops: uint8 tensor batches from streamed or cached examples.

Batches are ``images``: N x C x H x W (2D) or N x 1 x D x H x W (3D), dtype uint8, exactly the release pixels;
``labels``: N int64 class ids, or N x 14 uint8 multi-hot for ChestMNIST; ``index``: N int64 release rows.
PyTorch is optional: this module imports it only when a loader or a batch is made.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import numpy as np


def _pixels(value) -> np.ndarray:
    """An image/volume value as a uint8 array: PIL images, nested lists and arrays alike."""
    return np.asarray(value, dtype=np.uint8)


class UInt8Collate:
    """``collate_fn`` turning a list of examples into uint8 tensors (picklable, for DataLoader workers)."""

    def __call__(self, examples: List[Dict[str, Any]]) -> Dict[str, Any]:
        import torch

        column = "volume" if "volume" in examples[0] else "image"
        pixels = np.stack([_pixels(example[column]) for example in examples])
        if column == "volume":
            pixels = pixels[:, None]  # N x 1 x D x H x W
        elif pixels.ndim == 3:
            pixels = pixels[:, None]  # gray: N x 1 x H x W
        else:
            pixels = pixels.transpose(0, 3, 1, 2)  # RGB: N x 3 x H x W
        labels = [example["label"] for example in examples]
        if isinstance(labels[0], (list, tuple, np.ndarray)):
            label_tensor = torch.from_numpy(np.asarray(labels, dtype=np.uint8))
        else:
            label_tensor = torch.as_tensor(labels, dtype=torch.int64)
        return {
            "images": torch.from_numpy(np.ascontiguousarray(pixels)),
            "labels": label_tensor,
            "index": torch.as_tensor([example["index"] for example in examples], dtype=torch.int64),
        }


def streaming_dataset(source: str, config: str, split: str = "train", *, rank: int = 0, world_size: int = 1,
                      shuffle_buffer: Optional[int] = 1000, seed: int = 0, **load_kwargs):
    """``load_dataset(source, config, streaming=True)`` for one rank of ``world_size``, shuffled with a buffer.

    ``source`` is a Hub repo id (``"<namespace>/medmnist_plus"``) or a folder written by ``medmnist-plus export``.
    """
    import datasets
    from datasets.distributed import split_dataset_by_node

    stream = datasets.load_dataset(source, config, split=split, streaming=True, **load_kwargs)
    if world_size > 1:
        stream = split_dataset_by_node(stream, rank=rank, world_size=world_size)
    if shuffle_buffer:
        stream = stream.shuffle(seed=seed, buffer_size=shuffle_buffer)
    return stream


def data_loader(dataset, batch_size: int = 64, num_workers: int = 2, **kwargs):
    """A ``torch.utils.data.DataLoader`` over a (streaming or map-style) dataset yielding uint8 batches."""
    from torch.utils.data import DataLoader

    return DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, collate_fn=UInt8Collate(),
                      persistent_workers=False, **kwargs)
