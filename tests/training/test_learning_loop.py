"""The loop end to end: users' corrections through the real API, reviewed by a person, become training data of a
short retrain, and the
run folder and its model card say which folders it learnt from and how many images each gave."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import httpx

from browser import serve_or_fail, stop
from conftest import FAST, SAMPLE, pilah

CORRECTED = {"battery": "metal", "plastic": "plastic", "paper": "cardboard"}  # sample folder -> users' answer


def send_corrections(folder: Path) -> list[Path]:
    """One photo from each of three sample classes, through `pilah serve --corrections`."""
    url, process = serve_or_fail("serve", None, "--corrections", str(folder), health="/readyz")
    sent = []
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            for source, label in CORRECTED.items():
                path = sorted((SAMPLE / source).glob("*.jpg"))[0]
                files = {"file": (path.name, path.read_bytes(), "image/jpeg")}
                assert client.post("/v1/feedback", files=files, data={"label": label}).status_code == 201
                sent.append(path)
    finally:
        output = stop(process)
    assert "Traceback" not in output, output[-3000:]
    return sent


def test_corrections_from_the_api_join_a_retrain_and_the_card_counts_them(tmp_path):
    corrections = tmp_path / "corrections"
    sent = send_corrections(corrections)
    battery, plastic, paper = (hashlib.sha1(path.read_bytes()).hexdigest() for path in sent)
    pilah("data", "corrections", "review", corrections, "--accept", battery, plastic, "--reject", paper)
    run = tmp_path / "run"
    cached = ["--set", "train.mode=cached", "--set", "train.cached_views=1", "--set", f"train.cache_dir={tmp_path}/c"]
    pilah("train", "--data", SAMPLE, "--data", corrections, "--out", run, "--epochs", "1", *FAST, *cached)
    folders = json.loads((run / "folders.json").read_text())
    assert [Path(f["folder"]).name for f in folders] == ["garbage12-sample", "corrections"]
    assert [f["all"] for f in folders] == [96, 2]  # the rejected correction is not trained on
    with open(run / "manifest.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    from_users = [r for r in rows if r["source"] == "1"]
    assert sorted(r["class"] for r in from_users) == ["metal", "plastic"]
    split_of = {(r["source"], r["path"]): r["split"] for r in rows}
    group_of = {(r["source"], r["path"]): r["group"] for r in rows}
    for original in sent[:2]:  # each corrected photo shares its original's group and split: no leak
        key = ("0", original.relative_to(SAMPLE).as_posix())
        (copy,) = [r for r in from_users if r["group"] == group_of[key]]
        assert copy["split"] == split_of[key]
    pilah("package", run, "--out", tmp_path / "models", "--name", "retrained")
    card = json.loads((tmp_path / "models" / "retrained.json").read_text())
    assert [(f["folder"], f["all"]) for f in card["data"]["folders"]] == [("garbage12-sample", 96), ("corrections", 2)]
    assert card["training"]["command"].startswith("pilah train --data DATA_DIR --data CORRECTIONS_DIR ")
    assert str(tmp_path) not in json.dumps(card)  # a card travels: no local paths in it
    summary = pilah("data", "corrections", corrections).stdout
    assert "3 answers from users" in summary and "the model was wrong 2 times" in summary
