"""Scanning and splitting on real images: bad files, duplicates, leaks, reproducibility."""

import shutil
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from PIL import Image, ImageEnhance

from conftest import GARBAGE12, needs_shared, pilah
from pilah.config import Config, DataConfig
from pilah.data.scan import scan
from pilah.data.split import leaked_rows, read_manifest, split, write_manifest
from pilah.errors import ConfigError


def test_scan_counts_the_sample(sample_dir: Path):
    result = scan(sample_dir)
    assert len(result.classes) == 12
    assert result.class_counts() == {c: 8 for c in result.classes}
    assert result.rejected == []


def test_kaggle_layout_is_accepted(sample_dir: Path, tmp_path: Path):
    shutil.copytree(sample_dir, tmp_path / "garbage_classification", ignore=shutil.ignore_patterns("*.md"))
    result = scan(tmp_path)
    assert len(result.images) == 96
    assert all(f.path.startswith("garbage_classification/") for f in result.images)


def test_bad_files_are_listed_with_a_reason_and_left_out(sample_copy: Path):
    battery = sample_copy / "battery"
    good = next(battery.glob("*.jpg")).read_bytes()
    (battery / "empty.jpg").write_bytes(b"")
    (battery / "half.jpg").write_bytes(good[: len(good) // 3])
    (battery / "notes.jpg").write_text("not an image")
    Image.new("RGB", (64, 64), "green").save(battery / "renamed.txt", "PNG")  # an image despite its name
    result = scan(sample_copy)
    reasons = {Path(f.path).name: f.error for f in result.rejected}
    assert reasons == {"empty.jpg": "empty", "half.jpg": "corrupt", "notes.jpg": "not_an_image"}
    assert "battery/renamed.txt" in {f.path for f in result.images}
    assert len(result.images) == 97


def test_exact_and_near_duplicates_share_a_split(sample_copy: Path):
    source = next((sample_copy / "paper").glob("*.jpg"))
    shutil.copy(source, sample_copy / "paper" / "exact-copy.jpg")
    image = Image.open(source)
    ImageEnhance.Brightness(image).enhance(1.03).save(sample_copy / "paper" / "near-copy.jpg", quality=80)
    image.save(sample_copy / "paper" / "reencoded.png")
    result = scan(sample_copy)
    group = next(g for g in result.groups if any(f.path.endswith("exact-copy.jpg") for f in g))
    names = {Path(f.path).name for f in group}
    assert {source.name, "exact-copy.jpg", "near-copy.jpg", "reencoded.png"} <= names
    for seed in range(5):
        rows = split(result, DataConfig(seed=seed))
        by_group = defaultdict(set)
        for row in rows:
            by_group[row.group].add(row.split)
        assert all(len(splits) == 1 for splits in by_group.values())


def test_different_images_are_not_duplicates(sample_dir: Path):
    assert scan(sample_dir).groups == []


def test_split_is_stratified_and_reproducible(sample_dir: Path, tmp_path: Path):
    result = scan(sample_dir)
    rows = split(result, DataConfig())
    per_split = Counter(r.split for r in rows)
    assert per_split == {"train": 60, "val": 18, "test": 18}
    for label in result.classes:
        counts = Counter(r.split for r in rows if r.label == label)
        assert counts["train"] == 5 and counts["val"] + counts["test"] == 3
    write_manifest(rows, tmp_path / "a.csv")
    write_manifest(split(scan(sample_dir), DataConfig()), tmp_path / "b.csv")
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    other = split(result, DataConfig(seed=7))
    assert [r.split for r in other] != [r.split for r in rows]
    assert read_manifest(tmp_path / "a.csv") == rows


def test_cli_split_writes_manifest_table_and_chart(sample_dir: Path, tmp_path: Path):
    out = tmp_path / "split"
    result = pilah("data", "split", sample_dir, "--out", out)
    (total,) = [line.split() for line in result.stdout.splitlines() if line.startswith("total")]
    assert total == ["total", "60", "18", "18", "96"]  # train, val, test, all: the table the CLI prints
    header = (out / "manifest.csv").read_text().splitlines()[0]
    assert header == "path,class,split,sha1,group,source"
    assert (out / "class_distribution.csv").read_text().splitlines()[-1] == "total,60,18,18,96"
    chart = Image.open(out / "plots" / "class_distribution.png").convert("RGB")
    assert chart.size[0] > 800 and len(chart.getcolors(maxcolors=1 << 20)) > 12  # bars and labels drawn on it


def test_cli_scan_reports_and_never_crashes_on_bad_files(sample_copy: Path, tmp_path: Path):
    (sample_copy / "metal" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    result = pilah("data", "scan", sample_copy, "--out", tmp_path / "scan")
    assert "96 images in 12 classes" in result.stdout
    assert "metal/broken.png" in result.stdout
    assert "metal/broken.png" in (tmp_path / "scan" / "rejected.csv").read_text()


def test_missing_folder_is_a_clear_error(tmp_path: Path):
    result = pilah("data", "scan", tmp_path / "nope", check=False)
    assert result.returncode == 1
    assert "data folder not found" in result.stderr


@needs_shared(GARBAGE12)
def test_full_data_set_scan_and_split(tmp_path: Path):
    first = pilah("data", "split", GARBAGE12, "--out", tmp_path / "a")
    assert "15,191" in first.stdout
    pilah("data", "split", GARBAGE12, "--out", tmp_path / "b")
    manifest = (tmp_path / "a" / "manifest.csv").read_bytes()
    assert manifest == (tmp_path / "b" / "manifest.csv").read_bytes()
    rows = read_manifest(tmp_path / "a" / "manifest.csv")
    assert len(rows) == 15_191 and len({r.label for r in rows}) == 12
    by_group = defaultdict(set)
    for row in rows:
        by_group[row.group].add(row.split)
    assert all(len(splits) == 1 for splits in by_group.values())
    assert len({r.sha1 for r in rows}) == 15_055
    shares = Counter(r.split for r in rows)
    assert shares["train"] / len(rows) == pytest.approx(0.6, abs=0.002)
    assert shares["test"] / len(rows) == pytest.approx(0.2, abs=0.002)


def test_random_strategy_deals_copies_apart_and_says_it_leaks(sample_copy: Path, tmp_path: Path):
    """The seed project's kind of split, for a like-for-like comparison: duplicates are ignored, so some copies
    land on both sides; the manifest keeps their group, and the command says the split leaks."""
    for source in sorted(sample_copy.glob("*/*.jpg"))[::2]:  # 48 exact copies
        shutil.copy(source, source.with_name("copy-" + source.name))
    result = scan(sample_copy)
    grouped = split(result, DataConfig())
    leaky = split(result, DataConfig(split_strategy="random"))
    assert leaked_rows(grouped) == []
    leaked = leaked_rows(leaky)
    in_train = {r.sha1 for r in leaky if r.split == "train"}
    assert leaked and all(r.sha1 in in_train for r in leaked)  # each an exact copy of a training image
    assert Counter(r.split for r in leaky) == {"train": 84, "val": 30, "test": 30}  # 12 per class: 7/2.5/2.5
    assert [r.group for r in leaky] == [r.group for r in grouped]  # the manifest still names each copy's group
    with pytest.raises(ConfigError, match=r"data\.split_strategy: 'randon' is not one of .*did you mean 'random'"):
        Config.from_dict({"data": {"split_strategy": "randon"}})
    out = pilah("data", "split", sample_copy, "--strategy", "random", "--out", tmp_path / "random")
    assert f"LEAKING SPLIT (random): {len(leaked)} of 30 test images" in out.stderr
    assert read_manifest(tmp_path / "random" / "manifest.csv") == leaky
    assert "LEAKING" not in pilah("data", "split", sample_copy, "--out", tmp_path / "grouped").stderr


def val_count(rows: list, label: str) -> int:
    return sum(r.label == label and r.split == "val" for r in rows)


def test_refit_moves_half_of_validation_into_training_whole_groups_at_a_time(sample_copy: Path, tmp_path: Path):
    """A final fit: train + part of validation, the test split untouched, no copy straddling train and val."""
    for source in sorted(sample_copy.glob("*/*.jpg"))[::2]:  # 48 exact copies: groups of two
        shutil.copy(source, source.with_name("copy-" + source.name))
    result = scan(sample_copy)
    plain = split(result, DataConfig())
    refit = split(result, DataConfig(refit_fraction=0.5))
    moved = {(a.path, b.split) for a, b in zip(plain, refit, strict=True) if a.split != b.split}
    assert moved and {to for _, to in moved} == {"train"}
    assert [r for r in refit if r.split == "test"] == [r for r in plain if r.split == "test"]
    before, after = Counter(r.split for r in plain), Counter(r.split for r in refit)
    assert after["val"] + len(moved) == before["val"]
    for label in result.classes:  # within half a group (two images here) of half the class's validation images
        assert abs(val_count(plain, label) - val_count(refit, label) - val_count(plain, label) / 2) <= 1
    by_group = defaultdict(set)
    for row in refit:
        by_group[row.group].add(row.split)
    assert all(len(splits) == 1 for splits in by_group.values())
    kept = Counter(r.label for r in refit if r.split == "val")
    assert set(kept) == set(result.classes)  # every class keeps validation images to pick the epoch and calibrate
    assert split(result, DataConfig(refit_fraction=0.5)) == refit
    pilah("data", "split", sample_copy, "--refit", "0.5", "--out", tmp_path / "refit")
    assert read_manifest(tmp_path / "refit" / "manifest.csv") == refit
    with pytest.raises(ConfigError, match="refit_fraction"):
        Config.from_dict({"data": {"refit_fraction": 1.0}})


def test_several_folders_split_together_and_a_corrected_copy_of_a_test_photo_stays_in_test(
    sample_dir: Path, tmp_path: Path
):
    """`--data A --data B`: duplicates are grouped across folders, so a user's corrected copy of a test photo
    cannot leak into training; the first folder's split does not move; the manifest says where each image came
    from."""
    rows = split(scan(sample_dir), DataConfig())
    test_photos = [r for r in rows if r.split == "test"][:3]
    corrections = tmp_path / "corrections"
    for row in test_photos:  # as `CorrectionStore` keeps them: re-encoded JPEG, named by SHA-1
        (corrections / row.label).mkdir(parents=True, exist_ok=True)
        Image.open(sample_dir / row.path).save(corrections / row.label / f"{row.sha1}.jpg", quality=95)
    (corrections / "_none").mkdir()
    Image.new("RGB", (64, 64), "white").save(corrections / "_none" / "blank.jpg")
    result = scan([sample_dir, corrections])
    assert result.classes == scan(sample_dir).classes and result.folder_counts() == [96, 3]
    both = split(result, DataConfig())
    from_corrections = [r for r in both if r.source == 1]
    assert len(from_corrections) == 3 and {r.split for r in from_corrections} == {"test"}
    assert [(r.path, r.split) for r in both if r.source == 0] == [(r.path, r.split) for r in rows]
    assert leaked_rows(both) == []
    write_manifest(both, tmp_path / "manifest.csv")
    assert read_manifest(tmp_path / "manifest.csv") == both
    assert (tmp_path / "manifest.csv").read_text().splitlines()[0] == "path,class,split,sha1,group,source"


def test_a_second_folder_with_a_class_the_first_lacks_is_refused(sample_dir: Path, tmp_path: Path):
    (tmp_path / "glass").mkdir()
    Image.new("RGB", (64, 64), "green").save(tmp_path / "glass" / "a.jpg")
    result = pilah("data", "scan", sample_dir, "--data", tmp_path, check=False)
    assert result.returncode == 1 and "has classes that" in result.stderr and "glass" in result.stderr


def test_a_manifest_from_before_several_folders_still_reads(sample_dir: Path, tmp_path: Path):
    rows = split(scan(sample_dir), DataConfig())
    old = tmp_path / "old.csv"
    lines = ["path,class,split,sha1,group"] + [f"{r.path},{r.label},{r.split},{r.sha1},{r.group}" for r in rows]
    old.write_text("\n".join(lines) + "\n")
    assert read_manifest(old) == rows
