"""The recipe of the 2D datasets whose source is a collection of image files.

One rule, measured exact on genuine PneumoniaMNIST and BreastMNIST sources, with the crop and format of each
dataset's recipe text: open, convert to the dataset's mode, crop (:attr:`ImageRecipe.crop`), resize with PIL's
bilinear filter straight to the target size, and store with the source format's PIL defaults (a quality-75 JPEG
round trip for JPEG sources, nothing for lossless ones). Crop and read are done once per record; resize and
round trip once per size.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image

from . import imageops
from ..errors import RawRecordError
from .base import RawRecipe, RawRecord, Variant

SQUARE = "square"  # crop: the centered square of the short edge
JPEG_QUALITY = 75  # PIL's default quality, measured on PneumoniaMNIST (and RetinaMNIST shows the same signature)
CALIBRATION_KERNELS = ("bilinear", "bicubic", "lanczos", "box", "hamming", "nearest")
CALIBRATION_QUALITIES = (None, 75, 90, 95)


def open_image(path: Path) -> Image.Image:
    """Open and fully decode an image file, or raise :class:`RawRecordError` naming it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PIL warns about odd TIFF/PNG metadata it can read anyway
            image = Image.open(path)
            image.load()
        return image
    except FileNotFoundError:
        raise RawRecordError(f"{path}: file not found. The collection is incomplete: unpack it again.") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise RawRecordError(
            f"{path}: cannot be read as an image ({err}); the file is truncated or corrupt. Replace it with the "
            "collection's original file, or pass skip_bad=True (CLI --skip-bad) to leave it out (it is reported)."
        ) from None


class ImageRecipe(RawRecipe):
    """A 2D dataset made from image files: set ``mode``, ``crop`` and ``source_format``; list the records."""

    mode: str = "L"  # "L" for gray datasets, "RGB" for color ones
    # SQUARE: centered square of the short edge; (width, height): a fixed centered window; None: no crop
    crop: Union[str, Tuple[int, int], None] = SQUARE
    source_format: str = "JPEG"  # the source files' format, which the processed images were stored in
    min_source_size: Tuple[int, int] = (1, 1)  # smaller sources are wrongly sized for this collection

    def read_source(self, path: Path) -> Image.Image:
        """The source pixels of one file (a subclass may read other formats, e.g. slice stacks)."""
        return open_image(path)

    def load(self, root: Path, record: RawRecord) -> Image.Image:
        path = root / record.path
        image = imageops.to_mode(self.read_source(path), self.mode)
        width, height = self.min_source_size
        if image.width < width or image.height < height:
            raise RawRecordError(
                f"{path}: is {image.width}x{image.height} px, smaller than the {width}x{height} px of every "
                f"{self.collection} image; it is not a file of this collection. Replace it, or pass skip_bad=True.")
        if self.crop == SQUARE:
            return imageops.center_crop_square(image)
        if self.crop is not None:
            return imageops.center_crop(image, *self.crop)
        return image

    def render(self, image: Image.Image, size: int, variant: Variant) -> np.ndarray:
        out = imageops.resize(image, size, variant.kernel)
        out = imageops.jpeg_round_trip(out, variant.jpeg_quality)
        return imageops.as_release_pixels(out, self.facts.channels)

    def default_variant(self, size: int) -> Variant:
        return Variant(kernel="bilinear", jpeg_quality=JPEG_QUALITY if self.source_format == "JPEG" else None)

    def calibration_variants(self) -> List[Variant]:
        return [Variant(kernel=k, jpeg_quality=q) for k in CALIBRATION_KERNELS for q in CALIBRATION_QUALITIES]

    def parameters(self, variant: Variant) -> Dict[str, Any]:
        crop = {SQUARE: "centered square of the short edge", None: "none"}.get(
            self.crop, f"centered {self.crop[0]}x{self.crop[1]}" if isinstance(self.crop, tuple) else str(self.crop))
        return {"recipe": type(self).__name__, "mode": self.mode, "crop": crop, "resize": variant.kernel,
                "store": (f"JPEG round trip, quality {variant.jpeg_quality}" if variant.jpeg_quality
                          else f"lossless ({self.source_format} source)")}


# -- finding records -----------------------------------------------------------------------------------------


def files_under(folder: Path, suffixes: Sequence[str], exclude: Callable[[str], bool] = lambda name: False) -> List[Path]:
    """Image files directly in ``folder`` with one of ``suffixes`` (any case), sorted; hidden files skipped."""
    if not folder.is_dir():
        return []
    wanted = tuple(s.lower() for s in suffixes)
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.name.lower().endswith(wanted)
                  and not exclude(p.name))


def class_folder_records(root: Path, parts: Dict[Optional[str], str], classes: Dict[str, int],
                         suffixes: Sequence[str], exclude: Callable[[str], bool] = lambda name: False) -> List[RawRecord]:
    """Records of a ``<part>/<class folder>/<file>`` tree: ``parts`` maps source part -> sub-path ("" for none)."""
    records = []
    for source_split, sub in parts.items():
        for folder, label in classes.items():
            for path in files_under(root / sub / folder if sub else root / folder, suffixes, exclude):
                records.append(RawRecord(path.relative_to(root).as_posix(), label, source_split))
    return records


def has_class_folders(path: Path, classes: Sequence[str], minimum: int = 1) -> bool:
    return sum((path / name).is_dir() for name in classes) >= minimum
