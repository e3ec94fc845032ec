"""Batch prediction on Ray Data with a local Ray: the same rows as the plain Predictor, bad files kept, and a
worker killed mid-job replaced without losing a row."""

from __future__ import annotations

import csv
import os
import shutil
import signal
from pathlib import Path

import pytest

from browser import descendants_titled
from conftest import INT8_MODEL, SAMPLE, pilah
from pilah.inference import results
from pilah.inference.predictor import Predictor, expand_inputs

ray = pytest.importorskip("ray", reason="Ray is an extra: pip install 'pilah[ray]' (the dev install has it)")
ray_engine = pytest.importorskip("pilah.inference.ray_engine")


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """36 sample photos (3 per class) and two bad files."""
    folder = tmp_path_factory.mktemp("photos")
    for label in sorted(p.name for p in SAMPLE.iterdir() if p.is_dir()):
        for path in sorted((SAMPLE / label).glob("*.jpg"))[:3]:
            shutil.copy(path, folder / path.name)
    (folder / "notes.jpg").write_text("not a photo")
    (folder / "empty.png").write_bytes(b"")
    return folder


@pytest.fixture(scope="module")
def local_ray():
    ray_engine.start_ray(None, workers=2)
    yield
    ray.shutdown()


def plain_rows(folder: Path) -> dict[str, list[str]]:
    predictor = Predictor(INT8_MODEL)
    paths = [p.resolve() for p in expand_inputs([folder])]
    return {str(p.source): [str(v) for v in results.row(p, predictor.classes)] for p in predictor.predict_paths(paths)}


def assert_same_rows(ray_rows: list[list[str]], plain: dict[str, list[str]]) -> None:
    assert sorted(r[0] for r in ray_rows) == sorted(plain)  # one row per image, none lost or doubled
    for row in ray_rows:
        expected = plain[row[0]]
        assert row[1:2] + row[3:5] + row[6:7] == expected[1:2] + expected[3:5] + expected[6:7]  # label, grade, error
        numbers = [row[5], *row[7:]], [expected[5], *expected[7:]]  # novelty, probabilities
        for got, want in zip(*numbers, strict=True):  # other thread counts, same answer
            assert (got == want == "") or abs(float(got) - float(want)) < 1e-4


def job(folder: Path, workers: int = 2) -> ray_engine.RayJob:
    sources = [str(p.resolve()) for p in expand_inputs([folder])]
    return ray_engine.RayJob(sources, str(INT8_MODEL), workers=workers, batch_size=8)


def read_rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as handle:
        return list(csv.reader(handle))[1:]


def test_ray_gives_the_plain_predictors_rows_and_keeps_bad_files(local_ray, photos, tmp_path):
    classes = Predictor(INT8_MODEL, self_check=False).classes
    written = ray_engine.run(job(photos), tmp_path / "out.csv", classes)
    rows = read_rows(tmp_path / "out.csv")
    assert written == len(rows) == 38
    assert_same_rows(rows, plain_rows(photos))
    errors = {Path(r[0]).name: r[6].split(":")[0] for r in rows if r[6]}
    assert errors == {"notes.jpg": "not_an_image", "empty.png": "empty"}


def actor_processes() -> list[int]:
    return descendants_titled(os.getpid(), "ray::MapWorker(MapBatches(PredictActor))")


def test_a_worker_killed_mid_job_is_replaced_and_no_row_is_lost(local_ray, photos, tmp_path):
    classes = Predictor(INT8_MODEL, self_check=False).classes
    killed = []

    def kill_one_actor(rows_so_far: int) -> None:
        """After the first rows arrive, SIGKILL one actor: its batches must be redone by a new one."""
        pids = actor_processes()
        if not killed and pids:
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])

    ray_engine.run(job(photos), tmp_path / "out.csv", classes, progress=kill_one_actor)
    assert killed, "no actor was found to kill"
    assert_same_rows(read_rows(tmp_path / "out.csv"), plain_rows(photos))


def test_pilah_predict_engine_ray_writes_parquet(photos, tmp_path):
    import pyarrow.parquet as pq

    out = tmp_path / "results.parquet"
    result = pilah("predict", photos, "--engine", "ray", "--workers", "1", "--out", out, "--region", "de")
    assert "38 rows in" in result.stderr
    parquet = pq.read_table(out)
    types = {field.name: str(field.type) for field in parquet.schema}
    assert types["confidence"] == types["novelty"] == types["plastic"] == "double" and types["uncertain"] == "bool"
    assert types["label"] == types["grade"] == types["stream"] == "string"
    table = parquet.to_pydict()
    assert len(table["path"]) == 38 and table["stream"][table["path"].index(str(photos / "notes.jpg"))] == ""
    bad = table["path"].index(str(photos / "notes.jpg"))
    assert table["confidence"][bad] is None and table["uncertain"][bad] is None  # nulls, not the text "None"
    good = [i for i, error in enumerate(table["error"]) if not error]
    assert all(0 < table["confidence"][i] <= 1 and isinstance(table["uncertain"][i], bool) for i in good)
    plastic = [i for i, p in enumerate(table["path"]) if Path(p).name.startswith("plastic")]
    streams = [table["stream"][i] for i in plastic if table["label"][i] == "plastic"]
    assert streams and set(streams) == {"Yellow bin (packaging)"}  # some plastic was found, all of it yellow-binned
    missing = pilah("predict", photos, "--engine", "ray", check=False)
    assert missing.returncode == 2 and "--out" in missing.stderr
