"""RetinaMNIST: ordinal classification, 2D, RGB; sizes 28, 64, 128, 224.

Source collection: DeepDRiD.

The MedMNIST+ recipe for RetinaMNIST (from the MedMNIST+ notes):

    In MedMNIST, the source images of 3x1,736x1,824 are center-cropped with a window size of length of the short
    edge and resized into 3x28x28.

    In MedMNIST+, for size 224x224, 128x128, and 64x64, we first center-crop the source images of 3x1,736x1,824
    with a window size of length of the short edge, and then resize the source images into the target size.

As code: RGB, centered square of the short edge (1736 px), bilinear resize, JPEG round trip at quality 75 (the
official images show the q75 signature). Labels: the DR grade of the image's eye (``left_eye_DR_Level`` for
``*_l*`` images, ``right_eye_DR_Level`` for ``*_r*``, else ``patient_DR_Level``); grade 5 (ungradable) has no
RetinaMNIST class and is left out, counted. Split (paper): the regular-fundus training part is divided 9:1 into
train and validation; the validation part is the test split.
"""
import csv
import logging

from medmnist_plus_common.hf.builder import MedMNISTBuilder, size_configs
from medmnist_plus_common.errors import RawSourceError
from medmnist_plus_common.recipes.image import SQUARE, ImageRecipe
from medmnist_plus_common.recipes.base import RawRecord, SplitRule

logger = logging.getLogger(__name__)
PARTS = {"train": "regular-fundus-training", "validation": "regular-fundus-validation"}


class DeepDRiDRegularFundus(ImageRecipe):
    flag = "retinamnist"
    collection = "DeepDRiD regular fundus"
    manual_download_instructions = """\
RetinaMNIST is made from the regular fundus images of DeepDRiD (Liu et al., 2022, CC BY 4.0):
https://github.com/deepdrdoc/DeepDRiD . Download the repository's regular_fundus_images folder and pass it (or
the folder holding it) as data_dir. Expected tree (1736x1824 RGB JPEG):
    regular-fundus-training/regular-fundus-training.csv       regular-fundus-training/Images/<patient>/<id>.jpg
    regular-fundus-validation/regular-fundus-validation.csv   regular-fundus-validation/Images/<patient>/<id>.jpg"""
    root_candidates = ("", "regular_fundus_images", "DeepDRiD/regular_fundus_images")
    split_rule = SplitRule(ratios=(0.9, 0.1, 0.0), test_from="validation", pool=("train",))
    mode, crop, source_format = "RGB", SQUARE, "JPEG"

    def is_root(self, path):
        return any((path / part / f"{part}.csv").is_file() for part in PARTS.values())

    def records(self, root):
        records, ungradable = [], 0
        for source_split, part in PARTS.items():
            table = root / part / f"{part}.csv"
            if not table.is_file():
                continue
            images = {p.stem: p.relative_to(root).as_posix() for p in (root / part).rglob("*.jpg")}
            with open(table, newline="", encoding="utf-8-sig") as f:
                for line, row in enumerate(csv.DictReader(f), start=2):
                    image_id = (row.get("image_id") or "").strip()
                    grade = _grade(row, image_id)
                    if not image_id or grade is None:
                        raise RawSourceError(f"{table}, line {line}: needs image_id and a DR level column "
                                             "(left_eye_DR_Level / right_eye_DR_Level / patient_DR_Level).")
                    if grade == 5:
                        ungradable += 1
                        continue
                    if image_id in images:
                        records.append(RawRecord(images[image_id], grade, source_split))
        if ungradable:
            logger.warning("DeepDRiD: %d ungradable image(s) (grade 5) have no RetinaMNIST class and are left out.",
                           ungradable)
        return records


def _grade(row, image_id):
    eye = image_id.split("_")[-1][:1].lower() if "_" in image_id else ""
    column = {"l": "left_eye_DR_Level", "r": "right_eye_DR_Level"}.get(eye, "patient_DR_Level")
    for name in (column, "patient_DR_Level"):
        value = (row.get(name) or "").strip()
        if value:
            return int(float(value))
    return None


class RetinaMNIST(MedMNISTBuilder):
    DATASET_NAME = "retinamnist"
    RECIPE = DeepDRiDRegularFundus()
    BUILDER_CONFIGS = size_configs(DATASET_NAME)
