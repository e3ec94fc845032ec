"""The guards of the one route that writes to disk, against a real `pilah serve --corrections` on loopback: a
token, no form posts from other sites' pages (unless allowed, with CORS), a rate per client, and a server that
refuses to listen beyond loopback without a token."""

from __future__ import annotations

import httpx
import pytest
from test_api import photo, serve, stop

from conftest import pilah

TOKEN = "correct horse battery staple"
ALLOWED = "https://sort.example.org"
PER_MINUTE = 5


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    corrections = tmp_path_factory.mktemp("corrections")
    flags = ["--corrections", str(corrections), "--feedback-token", TOKEN, "--allow-origin", ALLOWED]
    url, process = serve(*flags, "--feedback-per-minute", str(PER_MINUTE))
    with httpx.Client(base_url=url, timeout=60) as client:
        yield client, corrections
    output = stop(process)
    assert "Traceback" not in output and TOKEN not in output, output[-3000:]


def send(client: httpx.Client, token: str | None = TOKEN, origin: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    headers |= {"Origin": origin} if origin else {}
    return client.post("/v1/feedback", files={"file": photo("paper.jpg")}, data={"label": "paper"}, headers=headers)


def test_feedback_needs_the_token_comes_from_allowed_pages_only_and_has_a_rate(guarded):
    client, corrections = guarded
    missing, wrong = send(client, token=None), send(client, token="guess")
    assert (missing.status_code, missing.json()["code"]) == (401, "unauthorized")
    assert wrong.status_code == 401 and missing.headers["WWW-Authenticate"] == "Bearer"
    assert not list(corrections.glob("*/*.jpg"))  # nothing written without the token
    evil = send(client, origin="http://evil.example")
    assert (evil.status_code, evil.json()["code"]) == (403, "cross_origin")
    allowed = send(client, origin=ALLOWED)
    assert allowed.status_code == 201 and allowed.headers["access-control-allow-origin"] == ALLOWED
    assert [send(client).status_code for _ in range(PER_MINUTE - 3)] == [201] * (PER_MINUTE - 3)
    limited = send(client)  # the two refused tokens counted too
    assert (limited.status_code, limited.json()["code"]) == (429, "rate_limited")
    assert 1 <= int(limited.headers["Retry-After"]) <= 60 / PER_MINUTE + 1
    assert len(list(corrections.glob("*/*.jpg"))) == 1  # the same photo each time: one file, many records
    assert client.post("/v1/predict", files={"file": photo("paper.jpg")}).status_code == 200  # predictions: no limit


def test_beyond_loopback_corrections_need_a_token(tmp_path):
    result = pilah("serve", "--host", "0.0.0.0", "--corrections", tmp_path, check=False, timeout=60)
    assert result.returncode == 2 and "PILAH_FEEDBACK_TOKEN" in result.stderr
    assert not (tmp_path / "corrections.jsonl").exists()
