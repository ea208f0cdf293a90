"""``calibrate``: render the records of a manifest with each candidate recipe variant and report how close each comes
to an official file: how a user with the official 64/128/224 px files settles the recipe at those sizes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..catalog import SPLITS
from ..hf.registry import all_recipes, recipe_for
from ..recipes.base import Assigned, Variant, plan_records
from ..release.reader import ReleaseArchive, member_name
from .align import release_size


@dataclass
class CalibrationRow:
    variant: Variant
    exact: int
    total: int
    mean_difference: float
    max_difference: int

    @property
    def exact_rate(self) -> float:
        return self.exact / self.total if self.total else 0.0


def calibrate(flag: str, data_dir, release, manifest, variants: Optional[Sequence[Variant]] = None,
              limit: Optional[int] = 200, progress: bool = False) -> List[CalibrationRow]:
    """Compare each recipe variant with ``release`` on the records of ``manifest``; best first."""
    recipe = recipe_for(flag)
    facts = recipe.facts
    size = release_size(facts, str(release))
    plan = plan_records(recipe, data_dir, manifest, others=all_recipes())
    items = sorted(plan.assigned, key=lambda a: (SPLITS.index(a.split), a.index))[:limit]
    official = _official_rows(str(release), items)
    variants = list(variants or recipe.calibration_variants())
    stats = {v: [0, 0, 0.0, 0] for v in variants}
    for item in items:
        loaded = recipe.load(plan.root, item.record)
        reference = official[(item.split, item.index)].astype(np.int16)
        for v in variants:
            out = recipe.render(loaded, size, v)
            difference = np.abs(out.astype(np.int16) - reference) if out is not None else np.abs(reference)
            entry = stats[v]
            entry[0] += int(not difference.any())
            entry[1] += 1
            entry[2] += float(difference.mean())
            entry[3] = max(entry[3], int(difference.max()))
    rows = [CalibrationRow(v, e[0], e[1], e[2] / max(e[1], 1), e[3]) for v, e in stats.items()]
    return sorted(rows, key=lambda r: (-r.exact_rate, r.mean_difference, r.max_difference))


def _official_rows(release: str, items: Sequence[Assigned]) -> Dict[Tuple[str, int], np.ndarray]:
    rows = {}
    with ReleaseArchive(release) as archive:
        for split in SPLITS:
            indices = archive.row_indices(split)
            position = {int(i): row for row, i in enumerate(indices)} if indices is not None else {}
            wanted = sorted({(position.get(a.index, a.index), a.index) for a in items if a.split == split})
            if not wanted:
                continue
            chunks = archive.iter_chunks(member_name(split, "images"), [(row, row + 1) for row, _ in wanted])
            for (_, index), chunk in zip(wanted, chunks):
                rows[(split, index)] = np.array(chunk[0])
            for _ in chunks:
                pass
    return rows
