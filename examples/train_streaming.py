"""Train a small PyTorch model on a MedMNIST+ config streamed from the Hub (or an exported folder).

    python examples/train_streaming.py --source <namespace>/medmnist_plus --config pathmnist-64 --steps 20
    python examples/train_streaming.py --source ./medmnist_plus --config organmnist3d-28   # `medmnist-plus export`
    torchrun --nproc-per-node 2 examples/train_streaming.py --source ... --config ...      # RANK/WORLD_SIZE

Splits the stream across ranks with ``split_dataset_by_node``, shuffles the order of its Parquet row groups
every epoch and mixes rows through a shuffle buffer, and feeds a ``DataLoader`` (``num_workers=2``) that
delivers uint8 batches: N x C x H x W (2D) or N x 1 x D x H x W (3D).
Needs PyTorch (``pip install torch``).
"""

from __future__ import annotations

import argparse
import os

import torch
from torch import nn

from medmnist_plus_common.catalog import load_catalog
from medmnist_plus_common.training import stream_loader, streaming_dataset


def small_model(dims: int, channels: int, outputs: int) -> nn.Module:
    conv, pool = (nn.Conv3d, nn.AdaptiveAvgPool3d) if dims == 3 else (nn.Conv2d, nn.AdaptiveAvgPool2d)
    return nn.Sequential(conv(channels, 16, 3, padding=1), nn.ReLU(), conv(16, 32, 3, padding=1, stride=2),
                         nn.ReLU(), pool(1), nn.Flatten(), nn.Linear(32, outputs))


def train(source: str, config: str, steps: int = 10, batch_size: int = 64, num_workers: int = 2,
          shuffle_buffer: int = 256, rank: int = 0, world_size: int = 1, epochs: int = 1, seed: int = 0) -> list:
    facts, _ = load_catalog().parse_config_name(config)
    stream = streaming_dataset(source, config, rank=rank, world_size=world_size)
    loader = stream_loader(stream, batch_size=batch_size, num_workers=num_workers, shuffle_buffer=shuffle_buffer,
                           seed=seed)
    channels = 1 if facts.dims == 3 else facts.channels
    model = small_model(facts.dims, channels, facts.num_classes)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    loss_fn = nn.BCEWithLogitsLoss() if facts.is_multilabel else nn.CrossEntropyLoss()
    losses, step = [], 0
    for epoch in range(epochs):
        stream.set_epoch(epoch)  # a new shuffle order each epoch
        for batch in loader:
            images = batch["images"].float() / 255.0  # uint8 on the wire, float for the model
            labels = batch["labels"].float() if facts.is_multilabel else batch["labels"]
            loss = loss_fn(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            step += 1
            if rank == 0:
                print(f"epoch {epoch} step {step}: images {tuple(batch['images'].shape)} {batch['images'].dtype}, "
                      f"labels {tuple(batch['labels'].shape)}, loss {losses[-1]:.4f}")
            if step >= steps:
                return losses
    return losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", required=True, help="Hub repo id or exported folder")
    parser.add_argument("--config", required=True, help='"<flag>-<size>", e.g. pathmnist-64')
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--shuffle-buffer", type=int, default=256, help="rows per DataLoader worker")
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args()
    rank, world_size = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    train(args.source, args.config, steps=args.steps, batch_size=args.batch_size, num_workers=args.num_workers,
          shuffle_buffer=args.shuffle_buffer, rank=rank, world_size=world_size, epochs=args.epochs)


if __name__ == "__main__":
    main()
