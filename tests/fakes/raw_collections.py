"""Small synthetic raw source collections in each 2D dataset's true on-disk format, for tests and benchmarks.

:func:`write_raw_collection` lays out a few made-up images per class (or part) exactly as the collection a user
unpacks: the same folder tree, file names in the collection's style, label tables with the collection's columns,
the collection's file format (TIFF, PNG, JPEG, multi-page TIFF and ``.npy`` stacks) and its real image
dimensions, including the irregular cases the recipes must handle (RGBA and RGB-stored gray files, odd
long-short differences, a 127 px short edge, a TIFF with a malformed header, segmentation masks and ungradable
images that are not records). Pixels are smooth, image-like and seeded (not white noise), so encoders and
decoders do realistic work. It returns the records the recipe should find, with their labels and source parts.

Only numpy and PIL are used; nothing here knows the recipes' code (tests compare the two).
"""

from __future__ import annotations

import csv
import struct
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image

Record = Tuple[str, object, Optional[str]]  # (record path relative to the collection root, label, source split)

# Where the collection's top folder lies inside the folder written (the recipes find it there).
COLLECTION_SUBDIR = {"octmnist": "OCT", "pneumoniamnist": "chest_xray", "bloodmnist": "PBC_dataset_normal_DIB"}

PATH_CLASSES = ("ADI", "BACK", "DEB", "LYM", "MUC", "MUS", "NORM", "STR", "TUM")
CHEST_FINDINGS = ("Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia",
                  "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia")
DERMA_DX = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
OCT_CLASSES = ("CNV", "DME", "DRUSEN", "NORMAL")
BLOOD_CLASSES = ("basophil", "eosinophil", "erythroblast", "ig", "lymphocyte", "monocyte", "neutrophil", "platelet")
BLOOD_PREFIX = ("BA", "EO", "ERB", "IG", "LY", "MO", "SNE", "PLATELET")

# Image sizes (width, height) cycled through per collection: within each collection's real range, with odd
# long-short differences of both kinds (1 mod 4 and 3 mod 4), portrait and landscape.
OCT_SIZES = ((512, 496), (768, 497), (385, 280), (1536, 512), (513, 512), (384, 277), (1023, 496), (764, 501))
PNEUMONIA_SIZES = ((384, 127), (1003, 764), (911, 640), (640, 913), (1200, 903), (1024, 1021), (455, 768))
BREAST_SIZES = ((562, 471), (500, 449), (701, 618), (449, 500), (600, 597), (580, 483))
RETINA_SIZE = (1824, 1736)
BLOOD_SIZE = (360, 363)
DERMA_SIZE = (600, 450)
PATH_SIZE = (224, 224)
CHEST_SIZE = (1024, 1024)

DEFAULT_COUNTS = {"pathmnist": {"train": 2, "test": 1}, "chestmnist": 10, "dermamnist": 2,
                  "octmnist": {"train": 2, "test": 1}, "pneumoniamnist": {"train": 4, "test": 2},
                  "retinamnist": {"train": 6, "validation": 2}, "breastmnist": 2, "bloodmnist": 1, "tissuemnist": 2}


def smooth_pixels(rng: np.random.Generator, width: int, height: int, channels: int = 1) -> np.ndarray:
    """A seeded image-like uint8 array (height, width[, channels]): soft shapes plus a finer texture layer."""
    layers = []
    for cells, amplitude in ((7, 150.0), (max(8, min(width, height) // 12), 40.0)):
        low = rng.uniform(0, amplitude, size=(cells, cells, channels)).astype(np.float32)
        up = [np.asarray(Image.fromarray(low[..., c], "F").resize((width, height), Image.BICUBIC))
              for c in range(channels)]
        layers.append(np.stack(up, axis=-1))
    pixels = np.clip(30.0 + layers[0] + layers[1], 0, 255).astype(np.uint8)
    return pixels[..., 0] if channels == 1 else pixels


def _image(rng, size, mode: str) -> Image.Image:
    """A PIL image of ``size`` (width, height) in ``mode``; "RGB-gray"/"RGBA-gray": gray content stored so."""
    width, height = size
    if mode == "RGB":
        return Image.fromarray(smooth_pixels(rng, width, height, 3), "RGB")
    gray = smooth_pixels(rng, width, height, 1)
    if mode == "L":
        return Image.fromarray(gray, "L")
    # Gray scans stored with color channels: nearly equal channels (a small tint exercises the gray conversion).
    tint = rng.integers(-3, 4, size=3)
    rgb = np.stack([np.clip(gray.astype(np.int16) + t, 0, 255).astype(np.uint8) for t in tint], axis=-1)
    if mode == "RGB-gray":
        return Image.fromarray(rgb, "RGB")
    alpha = np.full(gray.shape + (1,), 255, np.uint8)
    return Image.fromarray(np.concatenate([rgb, alpha], axis=-1), "RGBA")


def _save(image: Image.Image, path: Path, **options) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **options)


def _per_part(counts, parts: Sequence[str], default) -> Dict[str, int]:
    counts = default if counts is None else counts
    if isinstance(counts, int):
        return {part: counts for part in parts}
    return {part: int(counts.get(part, 0)) for part in parts}


def malform_tiff(path: Path) -> None:
    """Give a TIFF the kind of odd header NCT-CRC-HE-100K has, which PIL still reads: an XResolution tag that
    claims two values (PIL warns "tag 282 had too many entries") and an unknown private tag."""
    data = bytearray(path.read_bytes())
    assert data[:4] == b"II*\x00", "little-endian TIFF expected"
    (ifd,) = struct.unpack_from("<I", data, 4)
    (entries,) = struct.unpack_from("<H", data, ifd)
    for i in range(entries):
        entry = ifd + 2 + 12 * i
        tag, kind, count = struct.unpack_from("<HHI", data, entry)
        if tag == 282 and kind == 5 and count == 1:  # XResolution, one RATIONAL: claim two
            struct.pack_into("<I", data, entry + 4, 2)
    path.write_bytes(bytes(data))


def _write_tiff(image: Image.Image, path: Path, odd_header: bool = False) -> None:
    from PIL import TiffImagePlugin

    path.parent.mkdir(parents=True, exist_ok=True)
    info = TiffImagePlugin.ImageFileDirectory_v2()
    info[282] = 72.0  # XResolution
    info[283] = 72.0
    info[296] = 2
    if odd_header:
        info[65000] = "private tag of an unknown scanner"  # an unknown private tag
        info.tagtype[65000] = 2
    image.save(path, format="TIFF", tiffinfo=info)
    if odd_header:
        malform_tiff(path)


# -- the nine collections -----------------------------------------------------------------------------------


def _pathmnist(root: Path, counts, rng) -> List[Record]:
    parts = {"train": "NCT-CRC-HE-100K", "test": "CRC-VAL-HE-7K"}
    per = _per_part(counts, list(parts), DEFAULT_COUNTS["pathmnist"])
    records, odd_done = [], False
    for split, folder in parts.items():
        for label, name in enumerate(PATH_CLASSES):
            for i in range(per[split]):
                rel = f"{folder}/{name}/{name}-{'TCGA-' if split == 'train' else ''}{rng.integers(16**7):07X}{i}.tif"
                _write_tiff(_image(rng, PATH_SIZE, "RGB"), root / rel, odd_header=not odd_done)
                odd_done = True
                records.append((rel, label, split))
    return records


def _chestmnist(root: Path, counts, rng) -> List[Record]:
    n = int(DEFAULT_COUNTS["chestmnist"] if counts is None else counts)
    records, rows = [], []
    for i in range(n):
        name = f"{i // 3 + 1:08d}_{i % 3:03d}.png"
        k = int(rng.integers(0, 3))  # no finding, one, or two findings
        findings = sorted(rng.choice(len(CHEST_FINDINGS), size=k, replace=False).tolist())
        text = "|".join(CHEST_FINDINGS[f] for f in findings) or "No Finding"
        mode = "RGBA-gray" if i % 4 == 1 else "L"
        _save(_image(rng, CHEST_SIZE, mode), root / "images" / name)
        rows.append([name, text, i % 3, i // 3 + 1, 40 + i, "M" if i % 2 else "F", "PA", 2500, 2048, 0.143, 0.143])
        records.append((f"images/{name}", tuple(int(j in findings) for j in range(len(CHEST_FINDINGS))), None))
    # A row whose image is not in the download (the collection's CSV lists all 112,120): not a record here.
    rows.append(["99999999_000.png", "Hernia", 0, 99999999, 50, "F", "AP", 2500, 2048, 0.143, 0.143])
    with open(root / "Data_Entry_2017.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["Image Index", "Finding Labels", "Follow-up #", "Patient ID", "Patient Age",
                         "Patient Gender", "View Position", "OriginalImage[Width", "Height]",
                         "OriginalImagePixelSpacing[x", "y]"])
        writer.writerows(rows)
    return records


def _dermamnist(root: Path, counts, rng) -> List[Record]:
    per = int(DEFAULT_COUNTS["dermamnist"] if counts is None else counts)
    records, rows, number = [], [], 24306
    for label, dx in enumerate(DERMA_DX):
        for i in range(per):
            image_id = f"ISIC_{number:07d}"
            part = "HAM10000_images_part_1" if number % 2 else "HAM10000_images_part_2"
            _save(_image(rng, DERMA_SIZE, "RGB"), root / part / f"{image_id}.jpg", quality=95)
            rows.append([f"HAM_{number + 7:07d}", image_id, dx, "histo", 45.0, "male", "back"])
            records.append((f"{part}/{image_id}.jpg", label, None))
            number += 1
    rows.append(["HAM_0000001", "ISIC_9999999", "nv", "follow_up", 50.0, "female", "trunk"])  # image not present
    with open(root / "HAM10000_metadata.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization"])
        writer.writerows(rows)
    return records


def _class_parts(root: Path, counts, rng, flag, classes, names, sizes, suffix) -> List[Record]:
    per = _per_part(counts, ["train", "test"], DEFAULT_COUNTS[flag])
    records, n = [], 0
    for split in ("train", "test"):
        for label, cls in enumerate(classes):
            for i in range(per[split]):
                rel = f"{split}/{cls}/{names(cls, label, n)}{suffix}"
                mode = "RGB-gray" if n % 3 == 2 else "L"  # some files of these gray sets are stored RGB
                _save(_image(rng, sizes[n % len(sizes)], mode), root / rel, quality=int(rng.integers(85, 96)))
                records.append((rel, label, split))
                n += 1
    return records


def _octmnist(root: Path, counts, rng) -> List[Record]:
    return _class_parts(root / "OCT", counts, rng, "octmnist", OCT_CLASSES,
                        lambda cls, label, n: f"{cls}-{1000000 + 7919 * n}-{n % 5 + 1}", OCT_SIZES, ".jpeg")


def _pneumoniamnist(root: Path, counts, rng) -> List[Record]:
    def name(cls, label, n):
        return f"IM-{115 + n:04d}-0001" if label == 0 else f"person{n + 1}_{'bacteria' if n % 2 else 'virus'}_{n}"

    return _class_parts(root / "chest_xray", counts, rng, "pneumoniamnist", ("NORMAL", "PNEUMONIA"), name,
                        PNEUMONIA_SIZES, ".jpeg")


def _retinamnist(root: Path, counts, rng) -> List[Record]:
    parts = {"train": "regular-fundus-training", "validation": "regular-fundus-validation"}
    per = _per_part(counts, list(parts), DEFAULT_COUNTS["retinamnist"])
    records, patient = [], 1
    for split, part in parts.items():
        rows = []
        ungradable = split == "train"  # one grade-5 image: no RetinaMNIST class, left out
        for i in range(per[split] + int(ungradable)):
            eye = "l" if i % 2 == 0 else "r"
            image_id = f"{patient}_{eye}{i % 2 + 1}"
            grade = 5 if (ungradable and i == per[split]) else int(rng.integers(0, 5))
            left, right = (grade, "") if eye == "l" else ("", grade)
            rel = f"{part}/Images/{patient}/{image_id}.jpg"
            _save(_image(rng, RETINA_SIZE, "RGB"), root / rel, quality=90)
            rows.append([patient, image_id, f"{part}\\Images\\{patient}\\{image_id}.jpg", left, right,
                         grade if grade != 5 else 5, 1])
            if grade != 5:
                records.append((rel, grade, split))
            if eye == "r":
                patient += 1
        patient += 1
        with open(root / part / f"{part}.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["patient_id", "image_id", "image_path", "left_eye_DR_Level", "right_eye_DR_Level",
                             "patient_DR_Level", "Overall quality"])
            writer.writerows(rows)
    return records


def _breastmnist(root: Path, counts, rng) -> List[Record]:
    per = int(DEFAULT_COUNTS["breastmnist"] if counts is None else counts)
    records, n = [], 0
    for cls, label in (("benign", 1), ("malignant", 0), ("normal", 1)):
        for i in range(1, per + 1):
            size = BREAST_SIZES[n % len(BREAST_SIZES)]
            mode = "RGB-gray" if n % 2 == 0 else "L"  # BUSI stores most scans RGB with three equal channels
            image = _image(rng, size, mode)
            if mode == "RGB-gray":  # equal channels, as in BUSI
                image = Image.merge("RGB", [image.getchannel(0)] * 3)
            _save(image, root / cls / f"{cls} ({i}).png")
            mask = Image.fromarray((smooth_pixels(rng, *size) > 120).astype(np.uint8) * 255, "L")
            _save(mask, root / cls / f"{cls} ({i})_mask.png")  # segmentations: not records
            if i == 1:
                _save(mask, root / cls / f"{cls} ({i})_mask_1.png")
            records.append((f"{cls}/{cls} ({i}).png", label, None))
            n += 1
    return records


def _bloodmnist(root: Path, counts, rng) -> List[Record]:
    per = int(DEFAULT_COUNTS["bloodmnist"] if counts is None else counts)
    base, records = root / "PBC_dataset_normal_DIB", []
    for label, (cls, prefix) in enumerate(zip(BLOOD_CLASSES, BLOOD_PREFIX)):
        for i in range(per):
            rel = f"{cls}/{prefix}_{100000 + 37 * label + i}.jpg"
            _save(_image(rng, BLOOD_SIZE, "RGB"), base / rel, quality=95)
            records.append((rel, label, None))
    return records


def _tissuemnist(root: Path, counts, rng) -> List[Record]:
    per = int(DEFAULT_COUNTS["tissuemnist"] if counts is None else counts)
    records, n = [], 0
    for label in range(8):
        for i in range(per):
            stack = np.stack([smooth_pixels(rng, 32, 32) for _ in range(7)])
            if i % 2 == 0:
                rel = f"{label}/cell_{label}_{i:04d}.tif"
                pages = [Image.fromarray(page, "L") for page in stack]
                (root / str(label)).mkdir(parents=True, exist_ok=True)
                pages[0].save(root / rel, format="TIFF", save_all=True, append_images=pages[1:])
            else:
                rel = f"{label}/cell_{label}_{i:04d}.npy"
                (root / str(label)).mkdir(parents=True, exist_ok=True)
                if n % 4 == 3:  # a 16-bit stack (the recipe keeps the high byte)
                    stack = stack.astype(np.uint16) * 257 + rng.integers(0, 200, stack.shape).astype(np.uint16)
                np.save(root / rel, stack)
            records.append((rel, label, None))
            n += 1
    return records


WRITERS = {"pathmnist": _pathmnist, "chestmnist": _chestmnist, "dermamnist": _dermamnist, "octmnist": _octmnist,
           "pneumoniamnist": _pneumoniamnist, "retinamnist": _retinamnist, "breastmnist": _breastmnist,
           "bloodmnist": _bloodmnist, "tissuemnist": _tissuemnist}


def write_raw_collection(flag: str, root, counts_per_class_or_part: Union[int, Dict[str, int], None] = None,
                         seed: int = 0) -> List[Record]:
    """Write a small synthetic raw collection of ``flag`` into ``root``, as a user would have unpacked it.

    ``counts_per_class_or_part``: images per class (an int), or per class and collection part
    (``{"train": 2, "test": 1}``; Retina: ``{"train": .., "validation": ..}`` images per part; ChestMNIST: the
    number of images). Returns the records the recipe should find: ``(record, label, source_split)`` with the
    record relative to the collection's top folder (``root / COLLECTION_SUBDIR.get(flag, "")``).
    """
    if flag not in WRITERS:
        raise ValueError(f"no synthetic raw writer for {flag!r}; one of {sorted(WRITERS)}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    return WRITERS[flag](root, counts_per_class_or_part, np.random.default_rng(seed))


def collection_root(flag: str, root) -> Path:
    """The top folder of the collection written by :func:`write_raw_collection` into ``root``."""
    return Path(root) / COLLECTION_SUBDIR.get(flag, "")
