"""DermaMNIST: multi-class classification, 2D, RGB; sizes 28, 64, 128, 224.

Source collection: HAM10000.

The MedMNIST+ recipe for DermaMNIST (from the MedMNIST+ notes):

    In MedMNIST, the source images of 3x600x450 are resized into 3x28x28.

    In MedMNIST+, for size 224x224, 128x128, and 64x64, we resize the source images of 3x600x450 into the target
    size.

As code: the 600x450 RGB JPEGs are cropped to the centered 450x450 square and resized (PIL bilinear), then
round-tripped through JPEG at quality 75 (the source format with PIL's defaults). The text says "resize", as it
does for BreastMNIST, whose sources were measured to be square-cropped first: the same is assumed here (settle it
with ``medmnist-plus calibrate dermamnist``). Labels: ``dx`` of ``HAM10000_metadata.csv`` (akiec, bcc, bkl, df,
mel, nv, vasc, the catalog's order). Split (paper): a seeded random 7:1:2.
"""
import csv

from medmnist_plus_common.hf.builder import MedMNISTBuilder, size_configs
from medmnist_plus_common.errors import RawSourceError
from medmnist_plus_common.recipes.image import SQUARE, ImageRecipe, files_under
from medmnist_plus_common.recipes.base import RawRecord, SplitRule

DIAGNOSES = {"akiec": 0, "bcc": 1, "bkl": 2, "df": 3, "mel": 4, "nv": 5, "vasc": 6}
METADATA = ("HAM10000_metadata.csv", "HAM10000_metadata")


class HAM10000(ImageRecipe):
    flag = "dermamnist"
    collection = "HAM10000"
    manual_download_instructions = """\
DermaMNIST is made from HAM10000 (Tschandl et al., 2018, CC BY-NC 4.0):
https://doi.org/10.7910/DVN/DBW86T . Download HAM10000_images_part_1.zip, HAM10000_images_part_2.zip and
HAM10000_metadata (.csv), unpack the image archives beside the metadata file and pass that folder as data_dir.
Expected tree (10,015 images, 600x450 JPEG):
    HAM10000_metadata.csv
    HAM10000_images_part_1/ISIC_*.jpg     HAM10000_images_part_2/ISIC_*.jpg   (or all in one folder)"""
    split_rule = SplitRule(ratios=(0.7, 0.1, 0.2))
    mode, crop, source_format = "RGB", SQUARE, "JPEG"

    def is_root(self, path):
        return any((path / name).is_file() for name in METADATA)

    def records(self, root):
        metadata = next(root / name for name in METADATA if (root / name).is_file())
        folders = [root] + sorted(p for p in root.iterdir() if p.is_dir())
        found = {p.stem: p.relative_to(root).as_posix() for folder in folders for p in files_under(folder, (".jpg",))}
        records = []
        with open(metadata, newline="", encoding="utf-8") as f:
            for line, row in enumerate(csv.DictReader(f), start=2):
                if "image_id" not in row or row.get("dx") not in DIAGNOSES:
                    raise RawSourceError(f"{metadata}, line {line}: needs image_id and dx (one of "
                                         f"{', '.join(DIAGNOSES)}); got {dict(row)}.")
                if row["image_id"] in found:
                    records.append(RawRecord(found[row["image_id"]], DIAGNOSES[row["dx"]]))
        return records


class DermaMNIST(MedMNISTBuilder):
    DATASET_NAME = "dermamnist"
    RECIPE = HAM10000()
    BUILDER_CONFIGS = size_configs(DATASET_NAME)
