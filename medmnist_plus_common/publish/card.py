"""The dataset card (README.md) of a published MedMNIST+ repository, generated from the catalog.

The YAML header keeps what ``datasets`` writes for each config (``configs`` with its data files and
``dataset_info`` with features and split sizes) and adds pretty name, licenses, task category, tags and size
category. The body describes each config: its dataset, license, labels, split counts, what ``index`` means and
how the config was produced (``provenance``, also kept as ``medmnist_plus.json`` beside the card).
"""

from __future__ import annotations

from typing import Dict, List, Optional

from huggingface_hub import DatasetCard, DatasetCardData

from ..catalog import SPLITS, ConfigRef, load_catalog

PROVENANCE_FILE = "medmnist_plus.json"
_LICENSE_IDS = {"CC BY 4.0": "cc-by-4.0", "CC BY-NC 4.0": "cc-by-nc-4.0"}


def _origin_text(p: dict) -> str:
    """The "produced from" cell of a config: the release file, or the raw collection and recipe (never "official")."""
    source = p.get("source", "official")
    if source == "raw":
        indices = "official indices (manifest)" if p.get("official_indices") else "**NOT the official indices**"
        return f"**regenerated** from the raw {p.get('collection')} collection by the medmnist-plus recipe; {indices}"
    if source in ("regenerated", "derived"):
        indices = "official indices" if p.get("official_indices", source == "derived") else "**NOT the official indices**"
        return f"**{source}** release file `{p.get('release_file')}` made by medmnist-plus (not the official file); {indices}"
    origin = f"`{p['release_file']}` (MD5 `{p['release_md5']}`)"
    if not p.get("verified", True):
        origin += " — built from a local file NOT verified as the official release"
    return origin


def _size_category(rows: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if rows < limit:
            return name
    return "1M<n<10M"


def render_card(metadata: Optional[dict], provenance: Dict[str, dict]) -> DatasetCard:
    """The card for the configs in ``provenance``; ``metadata`` is the YAML ``datasets`` wrote (kept as is)."""
    catalog = load_catalog()
    order = {name: i for i, name in enumerate(catalog.config_names())}
    configs = sorted(provenance, key=lambda name: (order.get(name, len(order)), name))
    refs = [catalog.parse_config_name(name, any_size=True) for name in configs]  # parsed once, passed on
    data = dict(metadata or {})
    for key in ("configs", "dataset_info"):  # only configs whose publication completed stay listed
        entries = data.get(key) or []
        entries = [entries] if isinstance(entries, dict) else entries
        data[key] = [entry for entry in entries if entry.get("config_name", "default") in provenance]
        if not data[key]:
            del data[key]
    licenses = sorted({_LICENSE_IDS[ref.facts.license] for ref in refs}) or ["cc-by-4.0"]
    dims = sorted({f"{ref.facts.dims}d" for ref in refs})
    total_rows = max([sum(ref.facts.split_counts.values()) for ref in refs] or [0])
    data.update(
        pretty_name="MedMNIST+",
        license=licenses if len(licenses) > 1 else licenses[0],
        task_categories=["image-classification"],
        tags=["medical", "biomedical", "medmnist", "medmnist-plus"] + dims,
        size_categories=[_size_category(total_rows)],
        language=["en"],
    )
    published_counts = {  # the rows actually published (equal to the catalog's for verified configs)
        info["config_name"]: {split["name"]: split["num_examples"] for split in info.get("splits", [])}
        for info in data.get("dataset_info", [])
    }
    card_data = DatasetCardData(**data)
    return DatasetCard(f"---\n{card_data.to_yaml()}\n---\n\n{_body(refs, provenance, published_counts)}")


def _body(refs: List[ConfigRef], provenance: Dict[str, dict], published_counts: Dict[str, Dict[str, int]]) -> str:
    catalog = load_catalog()
    lines = [
        "# MedMNIST+",
        "",
        "Standardized biomedical image classification datasets with fixed train/validation/test splits: MedMNIST+ "
        "(2D images at 28, 64, 128 and 224 px; 3D volumes at 28³ and 64³), published with the medmnist-plus "
        "tool from the official release files. One config per dataset and size.",
        "",
        "```python",
        "from datasets import load_dataset",
        f'ds = load_dataset("<this repo>", "{refs[0].name if refs else "pathmnist-224"}")',
        "```",
        "",
        "## Licenses",
        "",
        "Each config keeps the license of its dataset: **CC BY 4.0** for all datasets except **DermaMNIST, which is "
        "CC BY-NC 4.0 (non-commercial use only)**. The license of every config is in the table below.",
        "",
        "## Configs",
        "",
        "| config | dataset | kind | task | train / validation / test | license | produced from |",
        "|---|---|---|---|---|---|---|",
    ]
    for ref in refs:
        name, (facts, size) = ref.name, ref
        p = provenance[name]
        counts = published_counts.get(name) or facts.split_counts
        counts = " / ".join(f"{counts.get(s, 0):,}" for s in SPLITS)
        kind = f"{facts.dims}D, {'x'.join([str(size)] * facts.dims)}{' RGB' if facts.channels == 3 else ''}"
        origin = _origin_text(p)
        lines.append(f"| `{name}` | {facts.title} | {kind} | {facts.task} | {counts} | {facts.license} | {origin} |")
    lines += _duplicates_section(refs, provenance)
    previews = [ref.name for ref in refs if provenance[ref.name].get("preview")]
    if previews:  # montages written by push/export: the first training samples, captioned "label #index"
        lines += ["", "## Previews", "", "The first training samples of each config, captioned with label and `index`"
                  " (3D: the axial, coronal and sagittal middle slices).", ""]
        lines += [f"**`{name}`**\n\n![{name} preview]({provenance[name]['preview']})\n" for name in previews]
    lines += [
        "",
        "## Columns",
        "",
        "- `index` (int64): the row of the example in its split of the official MedMNIST arrays (0-based), so every "
        "example can be traced back to the release and to MedMNIST's published ID mappings.",
        "- `image` (2D configs): `Image()`, lossless PNG, mode L (gray) or RGB, pixel-exact to the release.",
        "- `volume` (3D configs): `Array3D((s, s, s), uint8)`, D x H x W, exact to the release.",
        "- `label`: `ClassLabel` with the names below; for ChestMNIST a list of 14 uint8 multi-hot values "
        "(1 = finding present) in the order of its label names.",
        "",
        "Splits are `train`, `validation` and `test`; MedMNIST's `val` split is named `validation` here.",
        "",
        "## How each config was produced",
        "",
        "Each config is converted row by row, without changing a pixel, from the official MedMNIST+ release file "
        "of its dataset and size (Zenodo record 10519652) named in the table. Verified configs were checked "
        "against the file's published MD5, the catalog's array shapes, dtypes and row counts, and label ranges; "
        "a config marked NOT verified was built from a local file with those checks relaxed (MD5 and row counts). "
        + _regeneration_note(provenance),
        "",
        "## Datasets",
        "",
    ]
    for facts in {ref.flag: ref.facts for ref in refs}.values():
        labels = ", ".join(f"{i}: {label}" for i, label in enumerate(facts.labels))
        lines += [
            f"### {facts.title} (`{facts.flag}`)",
            "",
            facts.description,
            "",
            f"- Task: {facts.task}; labels: {labels}.",
            f"- License: {facts.license}.",
            f"- Source collection: {facts.source_collection.name}. {facts.source_collection.citation}",
            "",
        ]
    lines += [
        "## Citation",
        "",
        "Please cite MedMNIST v2, MedMNIST+ and the source collection of every dataset you use:",
        "",
        f"- {catalog.citations['medmnist_v2']}",
        f"- {catalog.citations['medmnist_plus']}",
        "",
    ]
    return "\n".join(lines)


def _duplicates_section(refs: List[ConfigRef], provenance: Dict[str, dict]) -> List[str]:
    """Exact-duplicate counts of each config that has them (counted by push/export)."""
    counted = [ref.name for ref in refs if isinstance(provenance[ref.name].get("duplicates"), dict)]
    if not counted:
        return []
    lines = ["", "## Duplicates", "",
             "Groups of examples with identical pixels in each config, as published (counted by medmnist-plus; "
             "`medmnist-plus audit <config>` lists them, and near duplicates too). A group *across splits* puts the "
             "same image in two of train, validation and test (leakage); one *with conflicting labels* gives the "
             "same image different labels. No example is removed: they are published as their release file has them.",
             "", "| config | groups of identical images | examples in them | across splits | with conflicting labels |",
             "|---|---|---|---|---|"]
    for name in counted:
        d = provenance[name]["duplicates"]
        lines.append(f"| `{name}` | {d.get('groups', 0):,} | {d.get('rows', 0):,} | {d.get('cross_split', 0):,} | "
                     f"{d.get('label_conflict', 0):,} |")
    return lines


def _regeneration_note(provenance: Dict[str, dict]) -> str:
    regenerated = sorted(name for name, p in provenance.items() if p.get("source", "official") != "official")
    if not regenerated:
        return "Regeneration from the raw source collections (the MedMNIST+ recipes) is not used for any config here."
    lines = ["", "", "**Configs NOT from the official release files:** " + ", ".join(f"`{n}`" for n in regenerated)
             + ". They were regenerated from the raw source collections with the medmnist-plus recipes (crops, "
             "resizes, projections, windows and voxelization as the MedMNIST+ text describes them, with the rules "
             "measured on genuine files); their pixels equal the official ones only where the recipe is proven "
             "exact, and their `index` is the official one only where a manifest gave it:"]
    for name in regenerated:
        p = provenance[name]
        recipe = p.get("recipe") or {}
        settings = ", ".join(f"{k}: {v}" for k, v in recipe.items()) if isinstance(recipe, dict) else str(recipe)
        lines.append(f"- `{name}`: {p.get('indices', '')}. Recipe: {settings}.")
    return "\n".join(lines)
