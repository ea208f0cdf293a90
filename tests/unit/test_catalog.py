import re

import pytest

from medmnist_plus_common import UnknownConfigError, load_catalog
EXPECTED_FLAGS_2D = [
    "pathmnist", "chestmnist", "dermamnist", "octmnist", "pneumoniamnist", "retinamnist", "breastmnist",
    "bloodmnist", "tissuemnist", "organamnist", "organcmnist", "organsmnist",
]
EXPECTED_FLAGS_3D = [
    "organmnist3d", "nodulemnist3d", "adrenalmnist3d", "fracturemnist3d", "vesselmnist3d", "synapsemnist3d",
]


def test_eighteen_datasets_and_sixty_configs():
    catalog = load_catalog()
    assert [f.flag for f in catalog] == EXPECTED_FLAGS_2D + EXPECTED_FLAGS_3D
    assert all(catalog[f].sizes == (28, 64, 128, 224) and catalog[f].dims == 2 for f in EXPECTED_FLAGS_2D)
    assert all(catalog[f].sizes == (28, 64) and catalog[f].dims == 3 for f in EXPECTED_FLAGS_3D)
    names = catalog.config_names()
    assert len(names) == len(set(names)) == 60
    assert "organmnist3d-64" in names and "pathmnist-224" in names


def test_release_files_follow_the_official_naming_and_have_md5s():
    catalog = load_catalog()
    md5s = set()
    for facts in catalog:
        for size, release in facts.files.items():
            expected = f"{facts.flag}.npz" if size == 28 else f"{facts.flag}_{size}.npz"
            assert release.file == expected
            assert release.url == f"https://zenodo.org/records/10519652/files/{expected}?download=1"
            assert re.fullmatch(r"[0-9a-f]{32}", release.md5)
            md5s.add(release.md5)
    assert len(md5s) == 60


def test_tasks_labels_and_licenses():
    catalog = load_catalog()
    assert catalog["chestmnist"].task == "multi-label" and catalog["chestmnist"].num_classes == 14
    assert catalog["retinamnist"].task == "ordinal" and catalog["retinamnist"].num_classes == 5
    assert catalog["pathmnist"].num_classes == 9 and catalog["pathmnist"].channels == 3
    assert catalog["breastmnist"].labels == ("malignant", "normal, benign")
    assert {f.flag for f in catalog if f.task == "binary"} == {
        "pneumoniamnist", "breastmnist", "nodulemnist3d", "adrenalmnist3d", "vesselmnist3d", "synapsemnist3d"}
    # OrganMNIST3D codes differ from the 2D Organ{A,C,S} order.
    assert catalog["organmnist3d"].labels[0] == "liver" and catalog["organamnist"].labels[0] == "bladder"
    assert {f.flag for f in catalog if f.license != "CC BY 4.0"} == {"dermamnist"}
    assert catalog["dermamnist"].license == "CC BY-NC 4.0"
    assert catalog["pathmnist"].split_counts == {"train": 89996, "validation": 10004, "test": 7180}


def test_unknown_names_suggest_the_closest():
    catalog = load_catalog()
    with pytest.raises(UnknownConfigError, match=r"'organmnist3d-64'"):
        catalog.parse_config_name("organmnist3d_64")
    with pytest.raises(UnknownConfigError, match=r"'pathmnist-224'"):
        catalog.parse_config_name("pathmnist-225")
    with pytest.raises(UnknownConfigError, match=r"Did you mean 'bloodmnist'"):
        catalog["bloodmnst"]
    ref = catalog.parse_config_name("adrenalmnist3d-64")
    assert (ref.flag, ref.size, ref.name, ref.shape) == ("adrenalmnist3d", 64, "adrenalmnist3d-64", (64, 64, 64))
    assert ref.release.file == "adrenalmnist3d_64.npz"  # an official size: it has a release file
    facts, size = catalog.parse_config_name("bloodmnist-96", any_size=True)  # unpacks; a raw-only size
    assert (facts.flag, size, catalog.parse_config_name("bloodmnist-96", any_size=True).release) == ("bloodmnist", 96, None)


@pytest.mark.parametrize("name, any_size, first, says", [
    ("pneumoniamnist-7", False, "pneumoniamnist-28", "any size from 8 to 1024 can be regenerated (7 is outside"),
    ("pneumoniamnist-7", True, "pneumoniamnist-28", "any size from 8 to 1024 can be regenerated (7 is outside"),
    ("organmnist3d-128", False, "organmnist3d-64", "has no official release at size 128 (other sizes, 8 to 1024, are regenerated"),
    ("pathmnist-abc", True, "pathmnist-28", "With source='raw', any size from 8 to 1024 can be regenerated."),
])
def test_one_rule_for_unknown_sizes_own_sizes_first_then_the_raw_range(name, any_size, first, says):
    with pytest.raises(UnknownConfigError) as error:
        load_catalog().parse_config_name(name, any_size=any_size)
    message = str(error.value)
    suggested = re.findall(r"'([a-z0-9]+-\d+)'", message.split("Did you mean")[1])
    flag = name.rsplit("-", 1)[0]
    assert suggested[0] == first and all(s.startswith(flag + "-") for s in suggested), message  # its own sizes
    assert says in message, message
