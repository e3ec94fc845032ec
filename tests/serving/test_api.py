"""The REST API against a real `pilah serve` on a loopback port, with the bundled model and real photos."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from bad_inputs import corpus, encode
from browser import serve_or_fail, stop
from conftest import EXAMPLES, INT8_MODEL, reference_photos

SCHEMATHESIS_LIMITS = ["--max-examples", "25", "--request-timeout", "60", "--generation-deterministic"]
HTTP_STATUS = {"not_an_image": 415, "unsupported": 415}  # every other image error is 422


def serve(*flags: str):
    return serve_or_fail("serve", None, *flags, health="/readyz")


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


def test_a_photo_unlike_household_waste_is_graded_unfamiliar_with_the_regions_safe_default(api):
    matplotlib = pytest.importorskip("matplotlib")
    logo = (Path(matplotlib.get_data_path()) / "sample_data" / "logo2.png").read_bytes()
    body = api.post("/v1/predict?region=de&lang=id", files={"file": ("logo2.png", logo, "image/png")}).json()
    assert body["grade"] == "unfamiliar" and body["uncertain"] is True and body["novelty"] > 0.4
    assert body["advice"] is None  # no class named, so no class's advice
    assert body["when_unsure"]["stream"] == "residual" and body["when_unsure"]["line"].startswith("Jika ragu")
    paper = api.post("/v1/predict?region=id&lang=en", files={"file": photo("paper.jpg")}).json()
    assert paper["grade"] == "sure" and paper["when_unsure"] is None and paper["novelty"] < body["novelty"]
    (look_alikes,) = paper["advice"]["exceptions"]
    assert look_alikes["stream"] == "residu" and look_alikes["items"].startswith("Used tissue")


def test_two_photos_to_the_one_photo_route_are_refused_not_half_answered(api):
    files = [("file", photo("paper.jpg")), ("file", photo("battery.jpg"))]
    response = api.post("/v1/predict", files=files)
    assert response.status_code == 422 and response.json()["code"] == "too_many_files"
    assert "/v1/predict/batch" in response.json()["message"]


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
    assert (
        check["passed"] is True
        and check["photos"] == reference_photos()
        and check["max_difference"] <= check["tolerance"]
    )
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
    for route in ("/v1/predict?lang=fr", "/v1/predict/batch?region=id&lang=fr"):
        field = "file" if route.startswith("/v1/predict?") else "files"
        language = api.post(route, files={field: photo("battery.jpg")})
        assert (language.status_code, language.json()["code"]) == (422, "unknown_language")
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


def test_one_oversized_file_in_a_batch_gets_its_own_413(api):
    files = [("files", photo("battery.jpg")), ("files", ("big.jpg", bytes(11 * 1024 * 1024), "image/jpeg"))]
    files.append(("files", photo("paper.jpg")))
    response = api.post("/v1/predict/batch", files=files)
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["result"]["label"] if r["result"] else r["error"]["code"] for r in results] == [
        "battery",
        "too_large_upload",
        "paper",
    ]


def test_a_streamed_body_without_content_length_is_measured_as_it_arrives(api):
    """A chunked upload declares no size: the limit is enforced on the bytes received, before parsing."""
    boundary = "pilahboundary"
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.jpg"\r\n\r\n'.encode()

    def chunks(size: int):
        yield head
        for _ in range(size // 65536):
            yield bytes(65536)
        yield f"\r\n--{boundary}--\r\n".encode()

    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    big = api.post("/v1/predict", content=chunks(11 * 1024 * 1024), headers=headers)
    assert "content-length" not in {k.lower() for k in big.request.headers}  # really sent chunked
    assert (big.status_code, big.json()["code"]) == (413, "too_large_upload")
    small = api.post("/v1/predict", content=chunks(65536), headers=headers)  # 64 KB of zeros: no image
    assert (small.status_code, small.json()["code"]) == (415, "not_an_image")
    assert_still_serves(api)


def test_max_upload_mb_sets_the_limit():
    url, process = serve("--max-upload-mb", "0.05")  # 52 KB: the example photos are 8-16 KB
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            refused = client.post("/v1/predict", files={"file": ("big.jpg", bytes(60 * 1024), "image/jpeg")})
            assert (refused.status_code, refused.json()["code"]) == (413, "too_large_upload")
            assert "52,428-byte limit" in refused.json()["message"]  # 0.05 x 1024 x 1024
            accepted = client.post("/v1/predict", files={"file": photo("battery.jpg")})
            assert (accepted.status_code, accepted.json()["label"]) == (200, "battery")
    finally:
        stop(process)


def test_concurrent_clients_each_get_their_own_photos_answer(api):
    """64 requests from 32 clients at once, batched together by the server: every answer must be the one for the
    photo its request sent (the file name is its class), so a batcher that mixed results up fails here."""
    names = sorted(p.name for p in EXAMPLES.glob("*.jpg") if p.stem != "brown-glass")  # 49 % against 47 %

    def client(i: int) -> list[tuple[str, int, str, str]]:
        with httpx.Client(base_url=str(api.base_url), timeout=120) as own:
            sent = [names[(i + k) % len(names)] for k in range(2)]
            answers = [own.post("/v1/predict", files={"file": photo(name)}) for name in sent]
            return [
                (name, a.status_code, a.json().get("label"), a.json().get("filename"))
                for name, a in zip(sent, answers, strict=True)
            ]

    with ThreadPoolExecutor(32) as pool:
        results = [r for result in pool.map(client, range(32)) for r in result]
    assert len(results) == 64
    for name, status, label, filename in results:
        assert (status, label, filename) == (200, Path(name).stem, name)


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

    broken = wrong_on_every_processor(INT8_MODEL, tmp_path / "broken.onnx")
    url, process = serve_or_fail("serve", broken, health="/healthz", cwd=tmp_path)  # no models/*.keras to fall back on
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
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


def test_slow_inference_answers_504_and_the_server_drops_what_nobody_waits_for(monkeypatch):
    """A batch of 384 photos (768 model passes with flip TTA: about 10 s here, still over a second on a machine ten
    times as fast) outlasts a 0.5 s timeout. The photos run in chunks of 8 (`PILAH_MAX_INFERENCE_BATCH`), and the
    chunks not yet started when the 504 goes out are dropped: a single photo is answered again once the chunk that
    was running is done (16 passes), not after the rest of the batch. The batch limit comes from the environment
    too (`PILAH_MAX_BATCH`)."""
    photos = [("files", photo(p.name)) for p in sorted(EXAMPLES.glob("*.jpg"))] * 32
    monkeypatch.setenv("PILAH_MAX_BATCH", str(len(photos)))
    monkeypatch.setenv("PILAH_MAX_INFERENCE_BATCH", "8")
    url, process = serve("--timeout", "0.5")
    try:
        with httpx.Client(base_url=url, timeout=120) as client:
            response = client.post("/v1/predict/batch", files=photos)
            assert (response.status_code, response.json()["code"]) == (504, "timeout")
            tries = [client.post("/v1/predict", files={"file": photo("paper.jpg")}) for _ in range(4)]
            answered = [r.status_code for r in tries]
            assert 200 in answered, answered  # four tries take 2 s at most: the rest of the batch takes longer
            assert tries[-1].json()["label"] == "paper"
    finally:
        stop(process)


SLOW_LINK_PIECE = 2048


def raw_request(url: str, head: bytes, body: bytes = b"") -> tuple[int, dict]:
    """Send bytes no HTTP client would: the status and the JSON body the server answers. The body goes in pieces,
    as over a slow link: the server answers a form it cannot parse before the rest has come, and must still read
    it (a connection closed with unread bytes is reset, and the answer lost)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(head + b"\r\nHost: pilah\r\nConnection: close\r\n\r\n")
        for start in range(0, len(body), SLOW_LINK_PIECE):
            connection.sendall(body[start : start + SLOW_LINK_PIECE])
            time.sleep(0.001)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    headers, _, content = rest.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in headers.lower(), answer[:300]
    return int(status_line.split()[1]), json.loads(content)


def multipart(parts: list[bytes]) -> bytes:
    return b"".join(b"--x\r\nContent-Disposition: form-data; " + p + b"\r\n\r\nv\r\n" for p in parts) + b"--x--\r\n"


def form_post(path: bytes, body: bytes, content_type: bytes = b"multipart/form-data; boundary=x") -> bytes:
    length = str(len(body)).encode()
    return b"POST " + path + b" HTTP/1.1\r\nContent-Type: " + content_type + b"\r\nContent-Length: " + length


@pytest.mark.parametrize(
    ("head", "body", "status", "code"),
    [
        (b"GET /healthz?" + b"a" * 5000 + b" HTTP/1.1", b"", 414, "query_too_long"),
        (b"GET /healthz?" + b"a" * 70_000 + b" HTTP/1.1", b"", 400, "bad_http_request"),
        (b"POST /v1/predict HTTP/1.1\r\nContent-Length: " + b"9" * 20, b"", 400, "bad_http_request"),
        (form_post(b"/v1/predict", b"abc", b"multipart/form-data"), b"abc", 400, "invalid_form"),
        *[
            (form_post(path, body), body, 400, "invalid_form")
            for path, body in [
                (b"/v1/predict", multipart([b'name="file"; filename="' + b"a" * 60_000 + b'"'])),
                (b"/v1/predict", multipart([b'name="f%d"' % i for i in range(1001)])),
                (b"/v1/predict/batch", multipart([b'name="files"; filename="%d.jpg"' % i for i in range(1001)])),
            ]
        ],
    ],
    ids=["long-query", "huge-query", "20-digit-length", "no-boundary", "60kb-filename", "1001-fields", "1001-files"],
)
def test_requests_no_client_should_send_get_json_errors_with_documented_codes(api, head, body, status, code):
    answered, error = raw_request(str(api.base_url).rstrip("/"), head, body)
    assert (answered, error["code"]) == (status, code), error
    assert f"`{code}`" in (Path(__file__).parents[2] / "docs" / "api.md").read_text()  # documented
    assert_still_serves(api)
