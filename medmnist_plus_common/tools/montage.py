"""``medmnist-plus montage``: a PNG grid of the first samples of a split, each tile captioned "label #index".

2D: each tile is the image itself, pixel for pixel (enlarged by an integer ``zoom``: 2x at 28 px by default, so
captions fit). 3D: each tile shows the three orthogonal middle slices of a volume side by side (axial ``v[D/2]``,
coronal ``v[:, H/2]``, sagittal ``v[:, :, W/2]``); with ``gif=True``, an animated GIF steps through the axial
slices of every volume at once. Rows are read in stored order and reading stops after the last tile, so a Hub
repo or an export streams only the row groups it shows.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import List, Optional, Tuple, Union

import numpy as np

from ..catalog import ConfigRef, DatasetFacts, config_ref
from ..errors import MedMNISTPlusError

PAD = 4  # around each cell
SLICE_GAP = 2  # between the three slices of a 3D tile
LINE_HEIGHT = 12
CAPTION_LINES = 2
MIN_CELL_WIDTH = 96  # room for a caption under small tiles
FRAME_MS = 80


class MontageError(MedMNISTPlusError, ValueError):
    """A montage that cannot be made (a GIF of a 2D config, an empty split, a bad size)."""


@dataclass
class Tile:
    index: int
    caption: str
    boxes: List[Tuple[int, int, int, int]]  # (left, top, right, bottom) of each picture: 1 in 2D, 3 slices in 3D


@dataclass
class Montage:
    config: str
    split: str
    zoom: int
    columns: int
    frames: List[object]  # PIL images: one for a PNG, one per slice for a GIF
    tiles: List[Tile] = field(default_factory=list)

    @property
    def image(self):
        return self.frames[0]

    def save(self, path: str) -> str:
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        partial = path + ".partial"
        if len(self.frames) > 1:
            self.frames[0].save(partial, format="GIF", save_all=True, append_images=self.frames[1:],
                                duration=FRAME_MS, loop=0)
        else:
            self.frames[0].save(partial, format="PNG", optimize=True)
        os.replace(partial, path)
        return path


def default_zoom(size: int) -> int:
    return max(1, 64 // size)


def caption_for(facts: DatasetFacts, label, index: int) -> Tuple[str, str]:
    if facts.is_multilabel:
        found = [facts.labels[i] for i, value in enumerate(np.asarray(label).ravel()) if value]
        text = ", ".join(found) if found else "no finding"
    else:
        text = facts.labels[int(label)]
    return text, f"#{int(index)}"


def middle_slices(volume: np.ndarray) -> List[np.ndarray]:
    """Axial, coronal and sagittal middle slices of a D x H x W volume."""
    d, h, w = volume.shape
    return [volume[d // 2], volume[:, h // 2, :], volume[:, :, w // 2]]


def _zoomed(picture: np.ndarray, zoom: int) -> np.ndarray:
    return picture if zoom == 1 else picture.repeat(zoom, axis=0).repeat(zoom, axis=1)


def _fit(draw, text: str, font, width: int) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text + "..."


def read_samples(config: Union[str, ConfigRef], split: str = "train", n: int = 100, *, data_dir=None, repo=None, cache_dir=None,
                 source: str = "official", manifest=None, progress=None):
    """The first ``n`` rows of a split as ``(index, label, pixels)`` triples (reading stops after them)."""
    from .rows import open_split

    if n < 1:
        raise MontageError(f"-n must be at least 1 (got {n}).")
    opened = open_split(config, split, data_dir=data_dir, repo=repo, cache_dir=cache_dir, source=source, build=False,
                        manifest=manifest)
    samples = []
    for rows in opened.batches(batch_size=min(n, 64), limit=n):
        samples += list(zip(rows.index.tolist(), rows.label, rows.pixels))
        if progress:
            progress(f"{len(samples):,}/{n:,} rows read from {opened.kind} {opened.where}")
    if not samples:
        raise MontageError(f"{opened.describe()}: the split is empty; there is nothing to show.")
    return opened, samples


def render(facts: DatasetFacts, size: int, samples, *, zoom: Optional[int] = None, columns: Optional[int] = None,
           gif: bool = False, config: str = "", split: str = "") -> Montage:
    """Lay out ``samples`` ((index, label, pixels) triples in the release layout) as a captioned grid."""
    from PIL import Image, ImageDraw, ImageFont

    if gif and facts.dims != 3:
        raise MontageError(f"{config}: --gif steps through the slices of 3D volumes; {facts.title} is 2D. "
                           "Leave out --gif for a PNG montage.")
    zoom = zoom or default_zoom(size)
    if zoom < 1:
        raise MontageError(f"--zoom must be a whole number >= 1 (got {zoom}).")
    side = size * zoom
    pictures = 3 if facts.dims == 3 and not gif else 1
    content_width = pictures * side + (pictures - 1) * SLICE_GAP
    cell_width = max(content_width, MIN_CELL_WIDTH) + 2 * PAD
    cell_height = side + CAPTION_LINES * LINE_HEIGHT + 2 * PAD
    columns = columns or math.ceil(math.sqrt(len(samples)))
    rows = math.ceil(len(samples) / columns)
    mode = "RGB" if facts.dims == 2 and facts.channels == 3 else "L"
    header = LINE_HEIGHT + PAD if facts.dims == 3 else 0  # 3D: which planes the tiles show (a GIF: which slice)
    canvas_size = (columns * cell_width, header + rows * cell_height)
    font = ImageFont.load_default()
    white = (255, 255, 255) if mode == "RGB" else 255

    base = Image.new(mode, canvas_size, 0)
    draw = ImageDraw.Draw(base)
    if facts.dims == 3 and not gif:
        draw.text((PAD, PAD // 2), _fit(draw, "each tile: axial | coronal | sagittal middle slice", font,
                                        canvas_size[0] - 2 * PAD), fill=white, font=font)
    tiles = []
    for number, (index, label, _) in enumerate(samples):
        left, top = (number % columns) * cell_width + PAD, header + (number // columns) * cell_height + PAD
        boxes = [(left + k * (side + SLICE_GAP), top, left + k * (side + SLICE_GAP) + side, top + side)
                 for k in range(pictures)]
        name, where = caption_for(facts, label, index)
        text_width = cell_width - 2 * PAD
        draw.text((left, top + side + 1), _fit(draw, name, font, text_width), fill=white, font=font)
        draw.text((left, top + side + 1 + LINE_HEIGHT), _fit(draw, where, font, text_width), fill=white, font=font)
        tiles.append(Tile(int(index), f"{name} {where}", boxes))

    def paste(canvas, picture, box):
        canvas.paste(Image.fromarray(np.ascontiguousarray(_zoomed(picture, zoom))), box[:2])

    if not gif:
        for tile, (_, _, pixels) in zip(tiles, samples):
            parts = middle_slices(pixels) if facts.dims == 3 else [pixels]
            for picture, box in zip(parts, tile.boxes):
                paste(base, picture, box)
        return Montage(config, split, zoom, columns, [base], tiles)
    frames = []
    for depth in range(size):
        frame = base.copy()
        ImageDraw.Draw(frame).text((PAD, PAD // 2), f"{config} {split}: axial slice {depth + 1}/{size}", fill=white,
                                   font=font)
        for tile, (_, _, volume) in zip(tiles, samples):
            paste(frame, volume[depth], tile.boxes[0])
        frames.append(frame)
    return Montage(config, split, zoom, columns, frames, tiles)


def montage(config: Union[str, ConfigRef], split: str = "train", n: int = 100, *, data_dir=None, repo=None,
            cache_dir=None, source: str = "official", manifest=None, gif: bool = False, zoom: Optional[int] = None,
            columns: Optional[int] = None, progress=None) -> Montage:
    """Read the first ``n`` samples of ``split`` and lay them out (see :func:`render`)."""
    ref = config_ref(config)  # parsed once (or given parsed), passed on
    facts, size, config = ref.facts, ref.size, ref.name
    if gif and facts.dims != 3:  # before reading anything
        render(facts, size, [], gif=True, config=config)
    opened, samples = read_samples(ref, split, n, data_dir=data_dir, repo=repo, cache_dir=cache_dir,
                                   source=source, manifest=manifest, progress=progress)
    return render(facts, size, samples, zoom=zoom, columns=columns, gif=gif, config=config, split=opened.split)


PREVIEW_SAMPLES = 16
PREVIEW_DIR = "previews"


def preview_path(config: str) -> str:
    """Where ``push`` and ``export`` put a config's preview, relative to the repo or folder root."""
    return f"{PREVIEW_DIR}/{config}.png"


def preview_png(config: Union[str, ConfigRef], dataset, n: int = PREVIEW_SAMPLES) -> bytes:
    """PNG bytes of a montage of the first ``n`` rows of ``dataset`` (one split of ``config``, any storage)."""
    import io

    from .rows import SplitSource

    ref = config_ref(config)
    facts, size, config = ref.facts, ref.size, ref.name
    source = SplitSource(config, "train", facts, size, "dataset", "", dataset)
    samples = [sample for rows in source.batches(batch_size=n, limit=n)
               for sample in zip(rows.index.tolist(), rows.label, rows.pixels)]
    if not samples:
        raise MontageError(f"{config}: the split is empty; there is nothing to show.")
    buffer = io.BytesIO()
    render(facts, size, samples, config=config, split="train").image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
