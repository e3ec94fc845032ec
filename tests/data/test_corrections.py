"""The corrections folder: data-set layout, an append-only log, limits, parallel writers, and its summary."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image

from conftest import EXAMPLES, SAMPLE, pilah
from pilah.data.corrections import (
    LOG_NAME,
    NONE_FOLDER,
    Correction,
    CorrectionStore,
    read_log,
    review_states,
    summarise,
    trainable,
)
from pilah.data.scan import scan
from pilah.errors import CorrectionError, ImageError

CLASSES = ["battery", "metal", "paper", "plastic"]


def said(predicted: str, chosen: str, confidence: float = 0.9) -> Correction:
    return Correction(predicted, confidence, chosen, "pilah-xception", "0.1.0", "id", "de", "api")


def sample_photos(count: int) -> list[bytes]:
    return [p.read_bytes() for p in sorted(SAMPLE.rglob("*.jpg"))[:count]]


def test_a_correction_keeps_the_photo_in_the_data_set_layout_and_appends_a_record(tmp_path):
    store = CorrectionStore(tmp_path / "corr", CLASSES)
    photo = (EXAMPLES / "battery.jpg").read_bytes()
    record = store.add(photo, said("battery", "metal"))
    sha1 = hashlib.sha1(photo).hexdigest()
    assert record["path"] == f"metal/{sha1}.jpg" and record["correct"] is False
    kept = Image.open(tmp_path / "corr" / record["path"])
    assert kept.format == "JPEG" and not kept.getexif()  # re-encoded: no metadata (e.g. GPS) kept
    (line,) = (tmp_path / "corr" / LOG_NAME).read_text().splitlines()
    assert json.loads(line) == record
    assert set(record) >= {"time", "model_name", "model_version", "predicted", "confidence", "chosen", "language"}
    assert record["region"] == "de" and record["channel"] == "api"


def test_the_latest_answer_decides_a_photos_class_and_none_is_kept_apart(tmp_path):
    store = CorrectionStore(tmp_path, CLASSES)
    photo = (EXAMPLES / "plastic.jpg").read_bytes()
    store.add(photo, said("plastic", "plastic"))
    store.add(photo, said("plastic", "none"))
    assert [p.relative_to(tmp_path).parts[0] for p in tmp_path.glob("*/*.jpg")] == [NONE_FOLDER]
    assert len(read_log(tmp_path)) == 2  # the log keeps both answers
    paper = store.add((EXAMPLES / "paper.jpg").read_bytes(), said("paper", "paper"))
    store.review(paper["sha1"], "accepted")
    assert scan(tmp_path).classes == ["paper"]  # "_none" is no class


def test_bad_input_is_refused_and_loses_nothing(tmp_path):
    store = CorrectionStore(tmp_path, CLASSES, max_photos=2, max_bytes=200_000)
    first, second, third = sample_photos(3)
    store.add(first, said("metal", "metal"))
    with pytest.raises(CorrectionError) as unknown:
        store.add(second, said("metal", "glass"))
    assert unknown.value.code == "correction" and unknown.value.http_status == 422
    with pytest.raises(ImageError):
        store.add(b"GIF89a not really", said("metal", "paper"))
    with pytest.raises(ImageError) as big:  # the same rule and error as an upload to the app or the API
        store.add(b"x" * 200_001, said("metal", "paper"))
    assert big.value.code == "too_large_upload" and big.value.http_status == 413
    store.add(second, said("metal", "paper"))
    with pytest.raises(CorrectionError) as full:
        store.add(third, said("metal", "paper"))
    assert full.value.code == "corrections_full" and full.value.http_status == 507
    assert str(tmp_path) not in str(full.value)  # the message reaches API clients: no local path in it
    store.add(second, said("metal", "plastic"))  # a photo already kept may still change class when full
    assert store.count() == 2 and len(read_log(tmp_path)) == 3


def add_many(folder: str, photos: list[bytes]) -> None:
    store = CorrectionStore(folder, CLASSES)
    for i, photo in enumerate(photos):
        store.add(photo, said("metal", CLASSES[i % len(CLASSES)]))


def test_parallel_writers_in_threads_and_processes_lose_nothing(tmp_path):
    photos = sample_photos(48)
    parts = [photos[i::6] for i in range(6)]
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=add_many, args=(str(tmp_path), part)) for part in parts[:2]]
    for process in processes:
        process.start()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda part: add_many(str(tmp_path), part), parts[2:]))
    for process in processes:
        process.join(120)
        assert process.exitcode == 0
    records = read_log(tmp_path)
    assert len(records) == 48 == len({r["sha1"] for r in records})
    assert sorted(p.name for p in tmp_path.glob("*/*.jpg")) == sorted(f"{r['sha1']}.jpg" for r in records)
    assert all((tmp_path / r["path"]).is_file() for r in records)


def test_a_torn_last_line_is_skipped_and_the_next_record_is_not_lost_with_it(tmp_path):
    store = CorrectionStore(tmp_path, CLASSES)
    store.add((EXAMPLES / "metal.jpg").read_bytes(), said("metal", "metal"))
    with open(tmp_path / LOG_NAME, "a") as log:
        log.write('{"path": "metal/abc')  # a crash mid-write
    assert len(read_log(tmp_path)) == 1
    store.add((EXAMPLES / "paper.jpg").read_bytes(), said("metal", "paper"))  # was glued onto the torn line
    assert [r["chosen"] for r in read_log(tmp_path)] == ["metal", "paper"]


def test_pilah_data_corrections_summarises_right_wrong_and_confusions(tmp_path):
    store = CorrectionStore(tmp_path, CLASSES)
    photos = sample_photos(5)
    for photo, (predicted, chosen) in zip(
        photos,
        [("metal", "metal"), ("plastic", "metal"), ("plastic", "metal"), ("paper", "paper"), ("metal", "none")],
        strict=True,
    ):
        store.add(photo, said(predicted, chosen))
    summary = summarise(tmp_path)
    assert summary.records == 5 and summary.photos == {NONE_FOLDER: 1, "metal": 3, "paper": 1}
    assert summary.per_class["metal"] == {"answers": 3, "right": 1, "wrong": 2}
    assert summary.confusions == [("plastic", "metal", 2), ("metal", "none", 1)]
    out = pilah("data", "corrections", tmp_path).stdout
    assert "5 answers from users" in out and "the model was wrong 3 times" in out
    assert "plastic -> metal: 2" in out
    (none_row,) = [line.split() for line in out.splitlines() if line.startswith("none ")]
    assert none_row == ["none", "1", "0", "1", "1"]  # its photo is in _none/: counted, not 0
    assert "no corrections" in pilah("data", "corrections", tmp_path / "empty").stdout


def test_photos_of_every_sample_class_are_accepted(tmp_path: Path):
    store = CorrectionStore(tmp_path, sorted(p.name for p in SAMPLE.iterdir() if p.is_dir()))
    for folder in sorted(p for p in SAMPLE.iterdir() if p.is_dir()):
        record = store.add(next(folder.glob("*.jpg")).read_bytes(), said("trash", folder.name))
        store.review(record["sha1"], "accepted")
    assert store.count() == 12 and scan(tmp_path).classes == store.classes
    assert len(scan(tmp_path).images) == 12


def test_every_field_is_checked_and_the_log_is_capped_too(tmp_path):
    store = CorrectionStore(tmp_path, CLASSES, max_photos=1)
    photo = (EXAMPLES / "metal.jpg").read_bytes()
    for field, value, code in (
        ("language", "x" * 1_000_000, "unknown_language"),
        ("region", "../../etc", "unknown_region"),
    ):
        bad = Correction("metal", 0.9, "metal", "pilah-xception", "0.1.0", **{field: value})
        with pytest.raises(CorrectionError) as refused:
            store.add(photo, bad)
        assert refused.value.code == code and refused.value.http_status == 422
    assert not (tmp_path / LOG_NAME).exists()  # nothing was written
    answers = 0
    with pytest.raises(CorrectionError) as full:  # the same photo answered again and again adds no photo...
        for answers in range(1, 100):
            store.add(photo, said("metal", CLASSES[answers % len(CLASSES)]))
    assert full.value.code == "corrections_full" and full.value.http_status == 507  # ...but the log is bounded
    assert (tmp_path / LOG_NAME).stat().st_size <= 2048 + 1024 and store.count() == 1 and answers > 2


def test_a_review_decides_what_trains_and_deletes_nothing(tmp_path):
    corrections = tmp_path / "corr"
    store = CorrectionStore(corrections, CLASSES)
    battery, metal, paper, plastic = (
        store.add((EXAMPLES / f"{name}.jpg").read_bytes(), said(name, chosen))
        for name, chosen in [("battery", "battery"), ("metal", "plastic"), ("paper", "paper"), ("plastic", "metal")]
    )
    assert trainable(corrections) == {}  # nothing trains before a person has looked
    assert trainable(corrections, unreviewed=True) == {r["path"]: r["chosen"] for r in (battery, metal, paper, plastic)}
    store.review(battery["sha1"], "accepted")
    store.review(metal["sha1"], "rejected")
    store.review(plastic["sha1"], "accepted", "plastic")  # the user was wrong: relabelled
    assert trainable(corrections) == {battery["path"]: "battery", plastic["path"]: "plastic"}
    assert trainable(corrections, unreviewed=True) == {
        battery["path"]: "battery",
        paper["path"]: "paper",
        plastic["path"]: "plastic",
    }  # never the rejected one
    assert all((corrections / r["path"]).is_file() for r in (battery, metal, paper, plastic))  # nothing deleted
    assert len(read_log(corrections)) == 7
    with pytest.raises(CorrectionError, match="no correction"):
        store.review("0" * 40, "accepted")
    with pytest.raises(CorrectionError, match="unknown class"):
        store.review(paper["sha1"], "accepted", "glass")
    store.add((EXAMPLES / "battery.jpg").read_bytes(), said("battery", "metal"))  # a user's new answer
    assert review_states(corrections)[battery["sha1"]].state == "pending"  # must be looked at again

    data = tmp_path / "data"
    for name in CLASSES:
        (data / name).mkdir(parents=True)
        for photo in sorted((SAMPLE / name).glob("*.jpg"))[:2]:
            (data / name / photo.name).write_bytes(photo.read_bytes())
    from_corrections = [f for f in scan([data, corrections]).images if f.source == 1]
    assert [(f.path, f.label) for f in from_corrections] == [(plastic["path"], "plastic")]


def test_pilah_data_corrections_review_asks_and_records(tmp_path):
    store = CorrectionStore(tmp_path, CLASSES)
    first, second, third = (
        store.add((EXAMPLES / f"{name}.jpg").read_bytes(), said(name, name)) for name in ("battery", "metal", "paper")
    )
    out = pilah("data", "corrections", "review", tmp_path, input="a\nl plastic\nq\n").stdout
    assert "3 corrections to review" in out and "1 pending" in out
    states = review_states(tmp_path)
    assert states[first["sha1"]].state == "accepted" and states[second["sha1"]].label == "plastic"
    assert states[third["sha1"]].state == "pending"
    pilah("data", "corrections", "review", tmp_path, "--reject", third["sha1"])
    assert review_states(tmp_path)[third["sha1"]].state == "rejected"
    assert "reviews: 0 pending, 2 accepted, 1 rejected" in pilah("data", "corrections", tmp_path).stdout


def test_many_decisions_read_the_log_once_and_a_bad_one_writes_none(tmp_path, monkeypatch):
    from pilah.data import corrections as module

    folder = tmp_path / "corr"
    store = CorrectionStore(folder, CLASSES)
    added = [store.add((EXAMPLES / f"{n}.jpg").read_bytes(), said(n, n)) for n in ("battery", "paper", "metal")]
    before = read_log(folder)
    with pytest.raises(CorrectionError, match="no correction"):
        store.review_many([(added[0]["sha1"], "accepted", None), ("f" * 40, "rejected", None)])
    assert read_log(folder) == before  # checked all before writing any
    replays = []
    replay = module.review_states
    monkeypatch.setattr(module, "review_states", lambda f: replays.append(f) or replay(f))
    decisions = [(a["sha1"], "accepted", None) for a in added] + [(added[1]["sha1"], "accepted", "plastic")]
    records = store.review_many(decisions)
    assert len(replays) == 1
    assert [r["label"] for r in records] == ["battery", "paper", "metal", "plastic"]
    assert replay(folder)[added[1]["sha1"]] == module.ReviewState(added[1]["path"], "plastic", "accepted")
    assert len(read_log(folder)) == len(before) + 4
