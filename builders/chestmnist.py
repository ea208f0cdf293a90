"""ChestMNIST: multi-label classification, 2D, gray-scale; sizes 28, 64, 128, 224.

Source collection: NIH ChestX-ray14.

The MedMNIST+ recipe for ChestMNIST (from the MedMNIST+ notes):

    In MedMNIST, we resize the source images of 1x1,024x1,024 into 1x28x28.

    In MedMNIST+, for size 224x224, 128x128, and 64x64, we resize the source images of 1x1,024x1,024 into the
    target size.

As code: the 1024 px gray PNGs (some stored RGBA: converted to gray) are resized (PIL bilinear) to the size; PNG
is lossless, so no JPEG step. Labels: the "Finding Labels" of ``Data_Entry_2017.csv`` ("A|B", or "No Finding"),
as 14 multi-hot values in the catalog's order (Pleural_Thickening is "pleural"). Split: MedMNIST's ChestMNIST
split is not NIH's list files (the counts differ) and was not published: without a manifest a seeded 7:1:2
split gives the official sizes, labelled as not the official indices.
"""
import csv

from medmnist_plus_common.hf.builder import MedMNISTBuilder, size_configs
from medmnist_plus_common.errors import RawSourceError
from medmnist_plus_common.recipes.image import SQUARE, ImageRecipe, files_under
from medmnist_plus_common.recipes.base import RawRecord, SplitRule

# The collection's finding names, in the catalog's label order.
FINDINGS = ("Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia",
            "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia")
LABEL_FILES = ("Data_Entry_2017.csv", "Data_Entry_2017_v2020.csv")


class NIHChestXray14(ImageRecipe):
    flag = "chestmnist"
    collection = "NIH ChestX-ray14"
    manual_download_instructions = """\
ChestMNIST is made from the NIH ChestX-ray14 collection (Wang et al., 2017):
https://nihcc.app.box.com/v/ChestXray-NIHCC . Download images_001.tar.gz ... images_012.tar.gz and
Data_Entry_2017.csv (or Data_Entry_2017_v2020.csv), unpack the archives beside the CSV and pass that folder as
data_dir. Expected tree (112,120 images, 1024x1024 PNG):
    Data_Entry_2017.csv
    images/00000001_000.png ...          (or Kaggle's images_001/images/*.png ... images_012/images/*.png)"""
    root_candidates = ("", "ChestX-ray14", "CXR8")
    split_rule = SplitRule(ratios=(0.7, 0.1, 0.2))
    mode, crop, source_format = "L", SQUARE, "PNG"

    def is_root(self, path):
        return any((path / name).is_file() for name in LABEL_FILES)

    def records(self, root):
        label_file = next(root / name for name in LABEL_FILES if (root / name).is_file())
        folders = [root / "images"] + sorted(p / "images" for p in root.glob("images_*") if p.is_dir())
        found = {p.name: p.relative_to(root).as_posix() for folder in folders for p in files_under(folder, (".png",))}
        records = []
        with open(label_file, newline="", encoding="utf-8") as f:
            for line, row in enumerate(csv.DictReader(f), start=2):
                name = row.get("Image Index")
                if name is None or "Finding Labels" not in row:
                    raise RawSourceError(f"{label_file}: line {line} has no 'Image Index' / 'Finding Labels' column; "
                                         "this is not ChestX-ray14's Data_Entry_2017.csv.")
                findings = {f.strip() for f in row["Finding Labels"].split("|")} - {"No Finding", ""}
                unknown = findings - set(FINDINGS)
                if unknown:
                    raise RawSourceError(f"{label_file}, line {line}: unknown finding(s) {sorted(unknown)}; "
                                         f"ChestX-ray14 has {', '.join(FINDINGS)} and 'No Finding'.")
                if name in found:
                    records.append(RawRecord(found[name], tuple(int(f in findings) for f in FINDINGS)))
        return records


class ChestMNIST(MedMNISTBuilder):
    DATASET_NAME = "chestmnist"
    RECIPE = NIHChestXray14()
    BUILDER_CONFIGS = size_configs(DATASET_NAME)
