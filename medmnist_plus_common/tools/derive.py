"""Deriving one official size of a dataset from another, where the dataset's recipe makes one from the other.

``medmnist-plus derive <flag> --from 64 --to 28 --data-dir D --out O`` reads the release file of size ``from``
in ``D`` (the official one, or one made by medmnist-plus) row by row, applies the recipe's resize to every row and
writes ``O/<flag>.npz`` (28) or ``O/<flag>_<size>.npz`` in the official format (members ``train_images``,
``train_labels``, ``val_images``, ... deflated, uint8), with an entry in ``O/medmnist_plus_regenerated.json``: a
builder given ``data_dir=O`` then reads the file labelled as derived, never as the official release.

Only the pairs the recipe text allows (:data:`DERIVATIONS`):

- AdrenalMNIST3D 28 from 64: the 64^3 crop zoomed as a 0/1 mask, > 0.5, stored 0/255 (measured exact, 200/200).
- FractureMNIST3D 28 from 64: "resize the center-cropped 64x64x64 image into 28x28x28": cubic zoom of the gray
  volume, rounded (the rounding is an assumption, see ``volumeops.resize_gray``).
- NoduleMNIST3D 64 from 28: "center-crop ... into 28x28x28, and then upsample them into 64x64x64": cubic zoom,
  rounded (same assumption).
- PathMNIST 28, 64 and 128 from 224: "for size 224x224, we utilize the source images directly; for 64x64 and
  128x128 [and 28 in MedMNIST] we resize the source images": PIL bilinear (``imageops.resize``), nothing else
  (the TIFF source is lossless, so no JPEG step).

Every row of the source file gives one row at the same split and index, with the same label (a blank output row
is kept: the rows must stay the source file's). Memory is bounded: rows are streamed in chunks
(:class:`..release.reader.ReleaseArchive`) and written member by member (:func:`..release.writer.write_npz_members`).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Dict, Iterator, Tuple

from ..catalog import SPLITS, DatasetFacts, load_catalog
from ..errors import MedMNISTPlusError
from ..logs import dropping

if TYPE_CHECKING:
    import numpy as np
# numpy and the release reader/writer are imported where rows are read: the CLI's --help lists DERIVATIONS
# without paying for them

logger = logging.getLogger(__name__)

CHUNK_BYTES = 16 * 2**20  # output rows are produced and written in chunks of about this many bytes


class DeriveError(MedMNISTPlusError, ValueError):
    """A derivation the recipe does not allow, or inputs it cannot use."""


def _mask_zoom(row: np.ndarray, size: int) -> np.ndarray:
    from ..recipes.volumeops import zoom_mask

    return zoom_mask(row, size)


def _gray_zoom(row: np.ndarray, size: int) -> np.ndarray:
    from ..recipes.volumeops import resize_gray

    return resize_gray(row, size)


def _bilinear(row: np.ndarray, size: int) -> np.ndarray:
    import numpy as np
    from PIL import Image

    from ..recipes.imageops import resize

    return np.asarray(resize(Image.fromarray(row), size, "bilinear"), dtype=np.uint8)


@dataclass(frozen=True)
class Derivation:
    resize: Callable[[np.ndarray, int], np.ndarray]
    rule: str  # what is done to each row (provenance, messages)
    basis: str  # the recipe text it follows, and what is measured or assumed


_MASK = Derivation(_mask_zoom, "scipy.ndimage.zoom of the 0/1 mask, order 3, > 0.5, stored 0/255 (volumeops.zoom_mask)",
                   "recipe: 28 is the 64^3 center crop resized; measured exact on the official files (200/200)")
_GRAY = Derivation(_gray_zoom, "scipy.ndimage.zoom, order 3, rounded half to even and clipped to 0..255 "
                               "(volumeops.resize_gray)",
                   "recipe text; the rounding of the zoomed gray volume is an assumption (check it with calibrate)")
_PATH = Derivation(_bilinear, "PIL bilinear resize (imageops.resize), no JPEG step",
                   "recipe: the 224 px tiles are the source images, resized to the other sizes; TIFF is lossless")

# flag -> {(from size, to size): derivation}: only what the recipe text allows
DERIVATIONS: Dict[str, Dict[Tuple[int, int], Derivation]] = {
    "adrenalmnist3d": {(64, 28): _MASK},
    "fracturemnist3d": {(64, 28): _GRAY},
    "nodulemnist3d": {(28, 64): _GRAY},
    "pathmnist": {(224, 28): _PATH, (224, 64): _PATH, (224, 128): _PATH},
}


def derivation_for(facts: DatasetFacts, from_size: int, to_size: int) -> Derivation:
    """The derivation of ``facts`` from ``from_size`` to ``to_size``, or :class:`DeriveError` saying what is allowed."""
    allowed = DERIVATIONS.get(facts.flag, {})
    if (from_size, to_size) in allowed:
        return allowed[(from_size, to_size)]
    if not allowed:
        raise DeriveError(
            f"{facts.title}: no size can be derived from another: its recipe makes every size from the source "
            f"collection (build it from the official files, or regenerate it from the raw collection). Derivable: "
            + "; ".join(f"{load_catalog()[flag].title} {', '.join(f'{t} from {f}' for f, t in pairs)}"
                        for flag, pairs in DERIVATIONS.items()) + ".")
    pairs = ", ".join(f"--from {f} --to {t}" for f, t in allowed)
    raise DeriveError(f"{facts.title}: size {to_size} cannot be derived from size {from_size}: its recipe does not "
                      f"make one from the other. Allowed: {pairs}.")


@dataclass
class DeriveReport:
    path: str
    source: str
    rows: Dict[str, int] = field(default_factory=dict)
    blank_rows: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        counts = ", ".join(f"{split} {n:,}" for split, n in self.rows.items())
        blank = (f"; {self.blank_rows} output row(s) are blank (kept: the rows are the source file's)"
                 if self.blank_rows else "")
        return (f"Derived {os.path.basename(self.path)} from {os.path.basename(self.source)}: {counts} rows in "
                f"{self.seconds:.1f} s{blank}")


def derive(flag: str, from_size: int, to_size: int, data_dir, out_dir) -> DeriveReport:
    """Write the ``to_size`` release file of ``flag`` derived from its ``from_size`` file in ``data_dir``."""
    import numpy as np

    from ..hf.sources import REGENERATED_PROVENANCE, regenerated_provenance, write_regenerated_provenance
    from ..release.reader import ReleaseArchive, member_name
    from ..release.writer import OFFICIAL_MEMBER_ORDER, write_npz_members

    started = time.perf_counter()
    facts = load_catalog()[flag]
    for size in (from_size, to_size):
        if size not in facts.files:
            raise DeriveError(f"{facts.title} has no official size {size} (official sizes: "
                              f"{', '.join(map(str, facts.sizes))}); derive makes official sizes from official sizes.")
    derivation = derivation_for(facts, from_size, to_size)
    data_dir = os.path.expanduser(str(data_dir))
    source_name, target_name = facts.files[from_size].file, facts.files[to_size].file
    source = os.path.join(data_dir, source_name)
    if not os.path.isfile(source):
        raise DeriveError(f"{source}: not found. derive reads the {facts.title} size-{from_size} release file from "
                          f"--data-dir: put {source_name} there (download it from {facts.files[from_size].url}, or "
                          f"let `medmnist-plus build {facts.config_name(from_size)}` download it).")
    out_dir = os.path.expanduser(str(out_dir))
    os.makedirs(out_dir, exist_ok=True)
    target = os.path.join(out_dir, target_name)
    if os.path.exists(target) and regenerated_provenance(out_dir, target_name) is None:
        raise DeriveError(f"{target}: exists and is not a file made by medmnist-plus (not listed in "
                          f"{REGENERATED_PROVENANCE} there), perhaps the official one: it is left alone. Choose "
                          "another --out folder.")
    if os.path.realpath(source) == os.path.realpath(target):
        raise DeriveError(f"{source}: --out would overwrite the source file. Choose another --out folder.")

    rows = _checked_rows(source, facts, from_size)
    out_shape = facts.image_shape(to_size)
    report = DeriveReport(target, source, dict(rows))

    def image_chunks(split: str) -> Iterator[np.ndarray]:
        count = rows[split]
        if count == 0:
            return
        chunk_rows = max(1, CHUNK_BYTES // int(np.prod(out_shape)))
        buffer = []
        with ReleaseArchive(source) as archive:
            for chunk in archive.iter_chunks(member_name(split, "images"), [(0, count)]):
                for row in chunk:
                    out = derivation.resize(row, to_size)
                    if out.shape != out_shape or out.dtype != np.uint8:
                        raise DeriveError(f"{facts.title}: the derivation gave {out.dtype} {out.shape}, not uint8 "
                                          f"{out_shape} (a bug: please report it).")
                    report.blank_rows += int(not out.any())
                    buffer.append(out)
                    if len(buffer) == chunk_rows:
                        yield np.stack(buffer)
                        buffer = []
        if buffer:
            yield np.stack(buffer)

    def label_chunks(split: str) -> Iterator[np.ndarray]:
        with ReleaseArchive(source) as archive:
            yield archive.read_array(member_name(split, "labels"))

    members = {}
    for split in SPLITS:
        members[member_name(split, "images")] = ((rows[split],) + out_shape, image_chunks(split))
        members[member_name(split, "labels")] = ((rows[split],) + facts.label_shape(), label_chunks(split))
    write_npz_members(target, {name: members[name] for name in OFFICIAL_MEMBER_ORDER})  # no .partial left on failure

    upstream = regenerated_provenance(data_dir, source_name)
    entry = {"source": "derived", "from": source_name, "from_size": from_size, "size": to_size,
             "recipe": {"rule": derivation.rule, "basis": derivation.basis},
             "indices": ("official (same rows as the source file)" if upstream is None else
                         f"the source file's rows ({upstream.get('indices', 'see its provenance')})"),
             "from_source": "official release file" if upstream is None else upstream.get("source", "regenerated"),
             "verified": False}
    if upstream is not None:
        entry["from_provenance"] = upstream
    write_regenerated_provenance(out_dir, {target_name: entry})
    report.seconds = time.perf_counter() - started
    if report.blank_rows:
        logger.warning("%s: %d derived row(s) are blank; they are kept so every row keeps its index.", target,
                       report.blank_rows)
    return report


def _checked_rows(source: str, facts: DatasetFacts, size: int) -> Dict[str, int]:
    """check_release (shapes, dtypes, channel layout, labels); other row counts than the catalog's are said once."""
    from ..release import reader

    with dropping(reader.logger, "Building it anyway"):  # its row-count warning speaks of builds; ours instead
        rows = reader.check_release(source, facts, size, strict=False)
    if rows != facts.split_counts:
        logger.warning("%s: has %s rows, not the official %s; deriving the same rows.", source,
                       "/".join(f"{rows[s]:,}" for s in SPLITS), "/".join(f"{facts.split_counts[s]:,}" for s in SPLITS))
    return rows


# -- command line ----------------------------------------------------------------------------------------------


__all__ = ["DERIVATIONS", "DeriveError", "DeriveReport", "derivation_for", "derive"]
