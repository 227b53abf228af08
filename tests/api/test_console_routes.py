"""The web console's back end on the embedded default with keys on, in-process: `/product/list_cubes`
(the caller's readable cubes with counts; grants to owners only), the operators' dead letters and
their redrive (admin only, bodies never shown), and the console's static files (public, under a
strict Content-Security-Policy, nothing outside the console folder)."""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from memcube.domain.model import DeadLetter
from memcube.settings import Settings
from memcube.wiring import Container
from memcube_api.app import create_app
from memcube_api.console_assets import ASSETS
from memcube_local.embedded import EmbeddedWorker
from memcube_local.wiring import LocalContainer

FAILED_AT = "2026-01-01T00:00:00Z"


@pytest.fixture
def keyed(tmp_path: Path) -> Iterator[Container]:
    container = LocalContainer(
        Settings(backend="embedded", embedder="hash", auth="keys", data_dir=tmp_path / "data", sync_timeout_seconds=20)
    )
    worker = EmbeddedWorker(container)
    worker.start()
    yield container
    worker.stop()
    container.close()


@pytest.fixture
def http(keyed: Container) -> TestClient:
    return TestClient(create_app(lambda: keyed))


def auth(container: Container, user: str, scope: str = "user") -> dict[str, str]:
    _, plaintext = container.keys.create(user, scope)  # type: ignore[arg-type]
    return {"authorization": f"Bearer {plaintext}"}


def ok(response: Any) -> Any:
    assert response.status_code == 200, response.text
    return response.json()["data"]


def add(http: TestClient, headers: dict[str, str], cube: str, text: str) -> None:
    body = {"user_id": headers["x-user"], "messages": text, "async_mode": "sync", "writable_cube_ids": [cube]}
    ok(http.post("/product/add", json=body, headers={"authorization": headers["authorization"]}))


def test_list_cubes_shows_the_personal_cube_and_readable_knowledge_bases_with_counts(
    http: TestClient, keyed: Container
) -> None:
    alice, bob, carol = auth(keyed, "alice"), auth(keyed, "bob"), auth(keyed, "carol")
    ok(
        http.post(
            "/product/create_cube", json={"user_id": "alice", "cube_id": "kb-team", "readers": ["bob"]}, headers=alice
        )
    )
    ok(http.post("/product/create_cube", json={"user_id": "carol", "cube_id": "kb-carol"}, headers=carol))
    add(http, {**alice, "x-user": "alice"}, "alice", "Alice moved to Lisbon in March to work as a nurse.")
    add(http, {**alice, "x-user": "alice"}, "kb-team", "The team meets every Monday at nine in room 4.")
    add(http, {**alice, "x-user": "alice"}, "kb-team", "Deploys are frozen during the last week of December.")

    mine = ok(http.get("/product/list_cubes", headers=alice))
    assert (mine["user_id"], mine["scopes"]) == ("alice", ["user"])
    by_id = {c["cube_id"]: c for c in mine["cubes"]}
    assert set(by_id) == {"alice", "kb-team"}
    assert by_id["alice"] | {"memories": 1} == by_id["alice"] and by_id["alice"]["kind"] == "personal"
    assert by_id["kb-team"]["memories"] == 2 and by_id["kb-team"]["readers"] == ["bob"]
    assert by_id["kb-team"]["role"] == "owner"

    theirs = ok(http.get("/product/list_cubes", headers=bob))["cubes"]
    assert [(c["cube_id"], c["role"]) for c in theirs] == [("bob", "owner"), ("kb-team", "reader")]
    assert theirs[1]["readers"] is None and theirs[1]["writers"] is None  # grants are the owner's to see


def test_list_cubes_for_another_user_is_refused_to_a_user_key_and_names_the_field(
    http: TestClient, keyed: Container
) -> None:
    response = http.get("/product/list_cubes", params={"user_id": "bob"}, headers=auth(keyed, "alice"))
    assert response.status_code == 403 and "user_id" in response.json()["message"]
    assert http.get("/product/list_cubes").status_code == 401


def test_list_cubes_with_keys_off_needs_a_user_id(tmp_path: Path) -> None:
    container = LocalContainer(Settings(backend="embedded", embedder="hash", data_dir=tmp_path / "d"))
    try:
        http = TestClient(create_app(lambda: container))
        response = http.get("/product/list_cubes")
        assert response.status_code == 422 and response.json()["message"].startswith("user_id: required")
        assert [c["cube_id"] for c in ok(http.get("/product/list_cubes", params={"user_id": "ann"}))["cubes"]] == [
            "ann"
        ]
    finally:
        container.close()


def letter(message_id: str, body: str) -> DeadLetter:
    return DeadLetter(
        message_id=message_id,
        body=body,
        reason="the PDF cannot be read",
        cube_id="alice",
        attempts=1,
        failed_at=FAILED_AT,
    )


def test_dead_letters_are_for_admins_only_and_never_show_their_bodies(http: TestClient, keyed: Container) -> None:
    keyed.dead_letters.record_dead_letter(letter("m-1", '{"secret": "Alice\'s diary"}'))
    refused = http.get("/product/dead_letters", headers=auth(keyed, "alice"))
    assert refused.status_code == 403 and "admin" in refused.json()["message"]
    refused = http.post("/product/redrive_dead_letters", json={}, headers=auth(keyed, "svc", "service"))
    assert refused.status_code == 403
    assert len(keyed.dead_letters.list_dead_letters()) == 1
    [shown] = ok(http.get("/product/dead_letters", headers=auth(keyed, "root", "admin")))
    assert shown["message_id"] == "m-1" and shown["reason"] == "the PDF cannot be read"
    assert "body" not in shown and "diary" not in str(shown)


def broken_pdf_add(user: str) -> dict[str, Any]:
    pdf = base64.b64encode(b"%PDF-1.4 not really a PDF").decode()
    part = {"type": "file", "file": {"file_data": f"data:application/pdf;base64,{pdf}", "filename": "notes.pdf"}}
    return {"user_id": user, "messages": [{"role": "user", "content": [part]}]}


def letters_when(container: Container, done: Callable[[list[DeadLetter]], bool]) -> list[DeadLetter]:
    deadline = time.monotonic() + 15
    while not done(letters := container.dead_letters.list_dead_letters()):
        assert time.monotonic() < deadline, letters
        time.sleep(0.05)
    return letters


def test_a_redrive_sends_the_chosen_letters_back_and_keeps_those_that_can_never_succeed(
    http: TestClient, keyed: Container
) -> None:
    admin, alice = auth(keyed, "root", "admin"), auth(keyed, "alice")
    ok(http.post("/product/add", json=broken_pdf_add("alice"), headers=alice))
    [real] = letters_when(keyed, lambda found: len(found) == 1)
    assert "notes.pdf" in real.reason
    keyed.dead_letters.record_dead_letter(letter("m-bad", '{"v": 1}'))
    asked = {"message_ids": [real.message_id, "m-bad", "m-gone"]}
    answer = ok(http.post("/product/redrive_dead_letters", json=asked, headers=admin))
    assert answer == {"sent": [real.message_id], "invalid": ["m-bad"], "not_found": ["m-gone"]}
    # It ran again, failed for the same reason and is a dead letter again; the invalid one stays.
    again = letters_when(keyed, lambda found: len(found) == 2)
    assert {d.message_id for d in again} - {"m-bad"} != {real.message_id}
    assert {d.task_id for d in again if d.message_id != "m-bad"} == {real.task_id}
    refused = http.post("/product/redrive_dead_letters", json={"message_ids": []}, headers=admin)
    assert refused.status_code == 422 and "message_ids" in refused.json()["message"]


# --- the static files ------------------------------------------------------------------------------


def test_every_console_file_is_served_with_a_strict_content_security_policy(http: TestClient) -> None:
    names = sorted(p.name for p in ASSETS.iterdir())
    assert {"index.html", "app.js", "api.js", "console.css"} <= set(names)
    for path in ["/console", *(f"/console/{n}" for n in names)]:
        response = http.get(path)
        assert response.status_code == 200, path
        csp = response.headers["content-security-policy"]
        for directive in ("default-src 'self'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'",
                          "object-src 'none'", "require-trusted-types-for 'script'"):  # fmt: skip
            assert directive in csp, (path, directive)
        assert "unsafe" not in csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
    assert http.get("/console").headers["content-type"] == "text/html; charset=utf-8"
    assert http.get("/console/app.js").headers["content-type"].startswith("text/javascript")


@pytest.mark.parametrize("path", ["/console/nope.js", "/console/..%2Fapp.py", "/console/%2e%2e%2Fconsole_assets.py"])
def test_a_path_that_is_not_a_console_file_is_404(http: TestClient, path: str) -> None:
    assert http.get(path).status_code == 404
    assert "content-security-policy" in http.get("/console/nope.js").headers


def test_the_page_has_no_inline_script_or_style_and_the_scripts_never_write_markup() -> None:
    html = (ASSETS / "index.html").read_text()
    assert re.findall(r"<script(?![^>]*\ssrc=)[^>]*>", html) == []
    assert " style=" not in html and "<style" not in html and " on" not in re.sub(r"<noscript>.*?</noscript>", "", html)
    for script in ASSETS.glob("*.js"):
        text = script.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
            assert sink not in text, (script.name, sink)
        assert "localStorage" not in text, script.name  # the key lives in sessionStorage only
