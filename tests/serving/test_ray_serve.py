"""`pilah serve --engine ray`: the same API as `pilah serve`, in Ray Serve replicas on loopback; feedback by id
works whichever replica it reaches; a replica killed under load is replaced while requests keep being answered;
SIGTERM stops it with status 0, and nothing of the Ray that `pilah serve` started outlives it. Processes are found
among the server's own descendants, never by title across the machine (where another test's Ray may run)."""

from __future__ import annotations

import os
import signal
import time

import httpx
import pytest

from browser import descendants_titled, serve_or_fail, stop
from conftest import EXAMPLES, INT8_MODEL
from pilah.inference.predictor import Predictor
from pilah.serving.ray_serve import READY_LINE

pytest.importorskip("ray.serve", reason="Ray Serve is an extra: pip install 'pilah[ray]' (the dev install has it)")
psutil = pytest.importorskip("psutil", reason="installed with pilah[ray]")
REPLICA_TITLE = "ray::ServeReplica:pilah:pilah"
# Ray starts a dozen processes before the first replica; with the other test worker busy on both cores that
# took 140 s here (13 s with one core free), so the Ray server gets longer than the plain one to come up.
RAY_START_TIMEOUT_S = 420


def family(process) -> list:
    return psutil.Process(process.pid).children(recursive=True)


def replicas(process) -> list[int]:
    return descendants_titled(process.pid, REPLICA_TITLE)


@pytest.fixture(scope="module")
def ray_server(tmp_path_factory):
    corrections = tmp_path_factory.mktemp("corrections")
    flags = ("--engine", "ray", "--replicas", "2", "--corrections", str(corrections), "--feedback-per-minute", "1000")
    # Every replica up, not just the first that answers: a replica killed while another is still starting fails
    # the deployment, and `pilah serve` stops (`the replicas did not start`), as it did once in CI.
    url, process = serve_or_fail(
        "serve", None, *flags, health="/readyz", timeout=RAY_START_TIMEOUT_S, ready_output=READY_LINE
    )
    with httpx.Client(base_url=url, timeout=60) as client:
        yield client, process
    ray_processes, replica_count = family(process), len(replicas(process))
    output = stop(process)
    assert len(ray_processes) > replica_count >= 2, output[-3000:]  # Ray's own processes, and the replicas
    assert process.returncode == 0 and "Traceback" not in output, output[-3000:]  # stopped as a server stops
    _, alive = psutil.wait_procs(ray_processes, timeout=30)
    assert not [(p.pid, p.name()) for p in alive], f"parts of Ray outlived pilah serve:\n{output[-3000:]}"


@pytest.fixture(scope="module")
def ray_api(ray_server):
    return ray_server[0]


def contract(schema):
    """The OpenAPI schema less what Serve's FastAPI wrapper adds (empty `example`s) and parameter order."""
    if isinstance(schema, dict):
        kept = {k: contract(v) for k, v in schema.items() if k != "example"}
        if isinstance(kept.get("parameters"), list):
            kept["parameters"] = sorted(kept["parameters"], key=lambda p: p["name"])
        return kept
    return [contract(v) for v in schema] if isinstance(schema, list) else schema


def predict(client: httpx.Client, name: str) -> httpx.Response:
    return client.post("/v1/predict", files={"file": (name, (EXAMPLES / name).read_bytes(), "image/jpeg")})


def test_the_replicas_answer_as_the_plain_predictor(ray_api):
    predictor = Predictor(INT8_MODEL)
    for photo in sorted(EXAMPLES.glob("*.jpg")):
        body = predict(ray_api, photo.name).json()
        expected = predictor.predict(photo)
        assert body["label"] == expected.label and body["grade"] == expected.grade
        assert abs(body["confidence"] - expected.confidence) < 1e-4


def test_the_same_routes_errors_and_schema_as_pilah_serve(ray_api):
    notes = ray_api.post("/v1/predict", files={"file": ("notes.txt", b"hello", "text/plain")})
    assert notes.status_code == 415 and notes.json()["code"] == "not_an_image"
    big = ray_api.post("/v1/predict", files={"file": ("big.jpg", b"\xff" * (11 * 1024 * 1024), "image/jpeg")})
    assert big.status_code == 413 and big.json()["code"] == "too_large_upload"
    url, process = serve_or_fail("serve", None, health="/readyz")
    try:
        plain = httpx.get(f"{url}/openapi.json", timeout=60).json()
    finally:
        stop(process)
    assert contract(ray_api.get("/openapi.json").json()) == contract(plain)
    assert ray_api.get("/readyz").json()["self_check"]["passed"] is True


def test_feedback_by_id_works_whichever_replica_it_reaches(ray_server):
    client, process = ray_server
    assert len(replicas(process)) == 2
    ids = [predict(client, name).json()["id"] for name in ["battery.jpg", "paper.jpg"] * 10]
    statuses = [client.post("/v1/feedback", data={"prediction_id": i, "label": "metal"}).status_code for i in ids]
    assert statuses == [201] * 20


def test_a_killed_replica_is_replaced_and_requests_keep_being_answered(ray_server):
    client, process = ray_server
    before = replicas(process)
    assert len(before) == 2
    os.kill(before[0], signal.SIGKILL)
    statuses, dropped = [], 0
    for _ in range(30):
        try:
            statuses.append(predict(client, "battery.jpg").status_code)
        except httpx.RemoteProtocolError:  # the request that reached the replica as it died: Serve does not retry it
            dropped += 1
            statuses.append(predict(client, "battery.jpg").status_code)  # the client's retry
    assert dropped <= 1 and statuses == [200] * 30  # then Serve routes around the dead replica
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (len(replicas(process)) < 2 or before[0] in replicas(process)):
        time.sleep(1)
    after = replicas(process)
    assert len(after) == 2 and before[0] not in after, after  # a new replica took its place
    assert predict(client, "metal.jpg").json()["label"] == "metal"
