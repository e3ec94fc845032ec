"""Corrections and regional advice over the API: a real `pilah serve --corrections DIR` on a loopback port."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from test_api import photo, serve, stop

from conftest import SAMPLE
from pilah import guidance
from pilah.data.corrections import LOG_NAME
from pilah.inference.predictor import Prediction
from pilah.serving.service import RecentPredictions
from pilah.serving.settings import ServiceConfig


@pytest.fixture(scope="module")
def corrections(tmp_path_factory):
    return tmp_path_factory.mktemp("corrections")


@pytest.fixture(scope="module")
def api(corrections):
    url, process = serve("--corrections", str(corrections), "--max-upload-mb", "1", "--feedback-per-minute", "1000")
    with httpx.Client(base_url=url, timeout=60) as client:
        yield client
    output = stop(process)
    assert "Traceback" not in output, output[-3000:]


def records(folder) -> list[dict]:
    path = folder / LOG_NAME
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def test_feedback_by_prediction_id_keeps_the_photo_under_the_right_class(api, corrections):
    predicted = api.post("/v1/predict", files={"file": photo("battery.jpg")}).json()
    assert predicted["label"] == "battery" and len(predicted["id"]) == 32
    response = api.post("/v1/feedback", data={"prediction_id": predicted["id"], "label": "metal", "region": "de"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["path"] == f"metal/{body['sha1']}.jpg" and body["predicted"] == "battery" and not body["correct"]
    assert (corrections / body["path"]).is_file()
    record = records(corrections)[-1]
    assert record["channel"] == "api" and record["region"] == "de" and record["model_name"] == "pilah-xception"
    assert record["confidence"] == pytest.approx(predicted["confidence"])


def test_feedback_with_the_photo_classifies_it_first(api, corrections):
    response = api.post("/v1/feedback", files={"file": photo("paper.jpg")}, data={"label": "paper", "language": "id"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["correct"] and body["predicted"] == body["chosen"] == "paper"
    assert records(corrections)[-1]["language"] == "id"


@pytest.mark.parametrize(
    ("data", "files", "status", "code"),
    [
        ({"label": "glass"}, {"file": photo("paper.jpg")}, 422, "unknown_label"),
        ({"label": "paper"}, None, 422, "invalid_request"),  # neither photo nor id
        ({"label": "paper", "prediction_id": "0" * 32}, {"file": photo("paper.jpg")}, 422, "invalid_request"),
        ({"label": "paper", "prediction_id": "0" * 32}, None, 404, "unknown_prediction"),
        ({"label": "paper"}, {"file": ("x.jpg", b"\xff\xd8\xff\xe0 cut", "image/jpeg")}, 422, "corrupt"),
        ({"label": "paper"}, {"file": ("notes.txt", b"hello", "text/plain")}, 415, "not_an_image"),
        ({"label": "paper"}, {"file": ("big.jpg", b"\xff" * (1024 * 1024 + 1), "image/jpeg")}, 413, "too_large_upload"),
        ({}, {"file": photo("paper.jpg")}, 422, "missing_file"),  # no label: a missing form field
        ({"label": "paper", "region": "x" * 1_000_000}, {"file": photo("paper.jpg")}, 422, "invalid_request"),
        ({"label": "paper", "region": "mars"}, {"file": photo("paper.jpg")}, 422, "unknown_region"),
        ({"label": "paper", "language": "fr"}, {"file": photo("paper.jpg")}, 422, "unknown_language"),
        ({"label": "paper", "prediction_id": "9" * 100_000}, None, 422, "invalid_request"),
    ],
)
def test_bad_feedback_gets_a_json_error_and_keeps_nothing(api, corrections, data, files, status, code):
    before = sorted(p.name for p in corrections.rglob("*.jpg")), len(records(corrections))
    response = api.post("/v1/feedback", data=data, files=files)
    assert response.status_code == status, response.text
    assert response.json()["code"] == code
    assert (sorted(p.name for p in corrections.rglob("*.jpg")), len(records(corrections))) == before


def test_parallel_clients_lose_no_correction(api, corrections):
    photos = sorted(SAMPLE.rglob("*.jpg"))[:32]
    before = len(records(corrections))

    def send(path):
        files = {"file": (path.name, path.read_bytes(), "image/jpeg")}
        return api.post("/v1/feedback", files=files, data={"label": path.parent.name}).status_code

    with ThreadPoolExecutor(16) as pool:
        assert list(pool.map(send, photos)) == [201] * 32
    new = records(corrections)[before:]
    assert len(new) == 32 and {r["chosen"] for r in new} == {p.parent.name for p in photos}
    assert all((corrections / r["path"]).is_file() for r in new)
    assert len(list(corrections.glob("*/*.jpg"))) == len({r["sha1"] for r in records(corrections)})


def test_region_adds_the_advice_of_that_regions_pack(api):
    regions = api.get("/v1/regions").json()
    assert [r["region"] for r in regions] == guidance.regions()
    body = api.post("/v1/predict?region=de&lang=id", files={"file": photo("plastic.jpg")}).json()
    assert body["advice"]["stream_name"] == "Tong kuning (kemasan)" and body["advice"]["bin_colour"] == "yellow"
    assert body["advice"]["source_url"].startswith("https://")
    batch = api.post("/v1/predict/batch?region=us-sf", files=[("files", photo("green-glass.jpg"))]).json()
    assert batch["results"][0]["result"]["advice"]["stream"] == "recycling"
    assert api.post("/v1/predict", files={"file": photo("plastic.jpg")}).json()["advice"] is None
    unknown = api.post("/v1/predict?region=mars", files={"file": photo("plastic.jpg")})
    assert unknown.status_code == 422 and unknown.json()["code"] == "unknown_region"


def test_without_corrections_feedback_is_off_and_predictions_carry_no_id():
    url, process = serve()
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            assert client.post("/v1/predict", files={"file": photo("metal.jpg")}).json()["id"] is None
            response = client.post("/v1/feedback", files={"file": photo("metal.jpg")}, data={"label": "metal"})
            assert response.status_code == 404 and response.json()["code"] == "feedback_disabled"
    finally:
        stop(process)


def test_the_openapi_schema_documents_feedback(api):
    schema = api.get("/openapi.json").json()
    route = schema["paths"]["/v1/feedback"]["post"]
    assert {"201", "404", "413", "415", "422", "507"} <= set(route["responses"])
    assert "region" in {p["name"] for p in schema["paths"]["/v1/predict"]["post"]["parameters"]}


def test_the_default_limits_hold_over_http(tmp_path):
    """10 MB a photo and 10,000 photos in the folder (the defaults `pilah serve` runs with), then 507 whose
    message names no path."""
    defaults = ServiceConfig()
    assert (defaults.max_upload_bytes, defaults.max_corrections) == (10 * 1024 * 1024, 10_000)
    full = tmp_path / "corrections"
    (full / "metal").mkdir(parents=True)
    for index in range(defaults.max_corrections):
        (full / "metal" / f"{index:040d}.jpg").write_bytes(b"")
    url, process = serve("--corrections", str(full))
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            just = client.post("/v1/predict", files={"file": ("a.jpg", b"\xff" * defaults.max_upload_bytes)})
            over = client.post("/v1/predict", files={"file": ("a.jpg", b"\xff" * (defaults.max_upload_bytes + 1))})
            assert (just.json()["code"], over.json()["code"]) == ("not_an_image", "too_large_upload")
            answer = client.post("/v1/feedback", files={"file": photo("paper.jpg")}, data={"label": "paper"})
    finally:
        stop(process)
    assert (answer.status_code, answer.json()["code"]) == (507, "corrections_full")
    assert "10,000" in answer.json()["message"] and str(tmp_path) not in answer.text
    assert not (full / "paper").exists()


def test_recent_predictions_forget_the_oldest_past_256_items_or_256_mb():
    defaults = ServiceConfig()
    recent = RecentPredictions(defaults.recent_predictions, int(defaults.recent_megabytes * 1024 * 1024))
    answer = Prediction(source="a.jpg")
    keys = [recent.add(b"x", answer) for _ in range(257)]
    assert recent.get(keys[0]) is None and recent.get(keys[1]) is not None and len(recent.items) == 256
    hundred_mb = b"\0" * (100 * 1024 * 1024)
    big = [recent.add(hundred_mb, answer) for _ in range(3)]  # 300 MB: the first big one and every small one go
    assert recent.get(big[0]) is None and recent.get(big[1]) is not None and recent.get(big[2]) is not None
    assert len(recent.items) == 2 and recent.bytes == 200 * 1024 * 1024
    small = recent.add(b"y", answer)  # the bytes were counted back as they left: a small one fits again
    assert recent.get(small) is not None and recent.get(big[1]) is not None
