"""The REST API against a real `pilah serve` on a loopback port, with the bundled model and real photos."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from bad_inputs import corpus, encode
from browser import free_port, start_pilah, stop, wait_for_health
from conftest import REPO
from pilah.predict import BUNDLED_MODEL_NAME

MODEL = REPO / "models" / BUNDLED_MODEL_NAME
EXAMPLES = REPO / "examples"
SCHEMATHESIS_LIMITS = ["--max-examples", "25", "--request-timeout", "60", "--generation-deterministic"]
HTTP_STATUS = {"not_an_image": 415, "unsupported": 415}  # every other image error is 422
pytestmark = pytest.mark.skipif(not MODEL.is_file(), reason="the bundled model is missing")


def serve(*flags: str):
    port = free_port()
    process = start_pilah("serve", port, None, *flags)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(url, process, path="/readyz")
    except (RuntimeError, TimeoutError) as error:
        pytest.fail(f"{error}\n{stop(process)}")
    return url, process


@pytest.fixture(scope="module")
def api():
    url, process = serve()
    with httpx.Client(base_url=url, timeout=60) as client:
        yield client
    output = stop(process)
    assert "Traceback" not in output, output[-3000:]


def photo(name: str) -> tuple[str, bytes, str]:
    return (name, (EXAMPLES / name).read_bytes(), "image/jpeg")


def assert_still_serves(api: httpx.Client) -> None:
    response = api.post("/v1/predict", files={"file": photo("battery.jpg")})
    assert response.status_code == 200 and response.json()["label"] == "battery"


def test_predict_one_photo(api):
    body = api.post("/v1/predict", files={"file": photo("battery.jpg")}).json()
    assert body["label"] == "battery" and body["filename"] == "battery.jpg"
    assert body["confidence"] == body["top_k"][0]["probability"] == max(body["probabilities"].values())
    assert len(body["top_k"]) == 3 and len(body["probabilities"]) == 12
    assert abs(sum(body["probabilities"].values()) - 1) < 1e-6
    assert isinstance(body["uncertain"], bool) and body["latency_ms"] > 0
    assert body["model"] == {"name": "pilah-xception", "version": "0.1.0"}


def test_batch_keeps_going_past_a_bad_file(api):
    files = [("files", photo("clothes.jpg")), ("files", ("notes.jpg", b"not a photo", "image/jpeg"))]
    files.append(("files", photo("shoes.jpg")))
    results = api.post("/v1/predict/batch", files=files).json()["results"]
    assert [r["filename"] for r in results] == ["clothes.jpg", "notes.jpg", "shoes.jpg"]
    assert results[0]["result"]["label"] == "clothes" and results[2]["result"]["label"] == "shoes"
    assert results[1]["result"] is None and results[1]["error"]["code"] == "not_an_image"


def test_model_card_health_and_docs(api):
    card = api.get("/v1/model").json()
    assert card["name"] == "pilah-xception" and len(card["classes"]) == 12 and "metrics" in card
    health = api.get("/healthz").json()
    assert (health["status"], health["ready"], health["version"]) == ("ok", True, "0.1.0")
    ready = api.get("/readyz")
    assert ready.status_code == 200
    assert "onnxruntime" in ready.json()["runtime"] and "graph optimisation all" in ready.json()["runtime"]
    check = ready.json()["self_check"]
    assert check["passed"] is True and check["photos"] == 11 and check["max_difference"] <= check["tolerance"]
    assert card["runtime"] == ready.json()["runtime"] and card["self_check_result"] == check
    schema = api.get("/openapi.json").json()
    assert {"/v1/predict", "/v1/predict/batch", "/v1/model", "/healthz"} <= set(schema["paths"])
    assert api.get("/docs").status_code == 200


@pytest.mark.parametrize("name", sorted(corpus()))
def test_each_bad_upload_gets_its_documented_error_and_the_server_stays_up(api, name):
    data, reason = corpus()[name]
    response = api.post("/v1/predict", files={"file": (name, data, "image/jpeg")})
    assert response.status_code == HTTP_STATUS.get(reason, 422), response.text
    assert response.json()["code"] == reason and response.json()["message"]
    assert_still_serves(api)


def test_request_errors(api):
    wrong_field = api.post("/v1/predict", files={"image": photo("battery.jpg")})
    assert (wrong_field.status_code, wrong_field.json()["code"]) == (422, "missing_file")
    no_body = api.post("/v1/predict")
    assert (no_body.status_code, no_body.json()["code"]) == (422, "missing_file")
    huge = api.post("/v1/predict", files={"file": ("big.jpg", bytes(11 * 1024 * 1024), "image/jpeg")})
    assert (huge.status_code, huge.json()["code"]) == (413, "too_large_upload")
    tiny = encode(__import__("PIL.Image").Image.new("RGB", (32, 32)), "PNG")
    many = api.post("/v1/predict/batch", files=[("files", (f"{i}.png", tiny, "image/png")) for i in range(33)])
    assert (many.status_code, many.json()["code"]) == (422, "too_many_files")
    unknown = api.get("/v2/anything")
    assert (unknown.status_code, unknown.json()["code"]) == (404, "not_found")
    assert_still_serves(api)


def test_concurrent_clients_all_get_answers(api):
    names = ["battery.jpg", "clothes.jpg", "paper.jpg", "shoes.jpg"]

    def client(i: int) -> list[int]:
        with httpx.Client(base_url=str(api.base_url), timeout=120) as own:
            return [own.post("/v1/predict", files={"file": photo(names[(i + k) % 4])}).status_code for k in range(2)]

    with ThreadPoolExecutor(32) as pool:
        statuses = [s for result in pool.map(client, range(32)) for s in result]
    assert statuses == [200] * 64


def test_full_queue_answers_503_with_retry_after_then_recovers():
    url, process = serve("--queue", "0")
    try:

        def one(_: int) -> httpx.Response:
            with httpx.Client(base_url=url, timeout=120) as client:
                return client.post("/v1/predict", files={"file": photo("paper.jpg")})

        with ThreadPoolExecutor(12) as pool:
            responses = list(pool.map(one, range(12)))
        refused = [r for r in responses if r.status_code == 503]
        assert refused, "12 requests at once with no queue should overflow"
        assert all(r.json()["code"] == "overloaded" and r.headers["Retry-After"] == "1" for r in refused)
        assert {r.status_code for r in responses} <= {200, 503}
        assert one(0).status_code == 200
    finally:
        stop(process)


def test_schemathesis_finds_no_server_errors(api):
    """Property-based requests generated from the service's own OpenAPI schema: never a 5xx."""
    command = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    if command is None:
        pytest.skip("schemathesis is not installed (pip install -e '.[dev]')")
    result = subprocess.run(
        [command, "run", f"{api.base_url}/openapi.json", "--checks", "not_a_server_error", *SCHEMATHESIS_LIMITS],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert_still_serves(api)


def test_a_model_whose_runtimes_all_answer_wrong_never_becomes_ready(tmp_path: Path):
    pytest.importorskip("onnx")
    from onnx_models import wrong_on_every_processor

    broken = wrong_on_every_processor(REPO / "models" / "pilah-xception-int8.onnx", tmp_path / "broken.onnx")
    port = free_port()
    process = start_pilah("serve", port, broken)
    try:
        wait_for_health(f"http://127.0.0.1:{port}", process, path="/healthz")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            deadline = time.monotonic() + 120
            while client.get("/healthz").json()["status"] != "error" and time.monotonic() < deadline:
                time.sleep(0.5)  # the model loads in the background
            health = client.get("/healthz").json()
            assert (health["status"], health["ready"], health["runtime"]) == ("error", False, None)
            for response in (client.get("/readyz"), client.post("/v1/predict", files={"file": photo("paper.jpg")})):
                assert response.status_code == 503 and response.json()["code"] == "not_ready"
                assert "refusing to serve wrong answers" in response.json()["message"]
    finally:
        output = stop(process)
    assert "Traceback" not in output


def test_slow_inference_answers_504_and_the_server_recovers():
    url, process = serve("--timeout", "0.001")
    try:
        with httpx.Client(base_url=url, timeout=120) as client:
            response = client.post("/v1/predict", files={"file": photo("paper.jpg")})
            assert (response.status_code, response.json()["code"]) == (504, "timeout")
            assert client.get("/healthz").json()["ready"] is True
    finally:
        stop(process)
