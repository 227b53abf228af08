"""API keys on a real `memcube serve`: created, listed and revoked with the operator CLI, sent by
the user CLI; no key or a revoked key is refused; serving beyond loopback needs keys on."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from memcube_local.cli import main
from tests.e2e.conftest import MEMCUBE, ServeFactory, free_port


def secret_of(key: str) -> str:
    """A key is `mck_<hex id>_<secret>`, and the secret (URL-safe base64) may itself hold `_`."""
    return key.split("_", 2)[2]


def operator(data: Path, *args: str) -> Result:
    env = {"MEMCUBE_DATA_DIR": str(data), "MEMCUBE_EMBEDDER": "hash"}
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def user_cli(url: str, key: str | None, *args: str) -> Result:
    env = {"MEMCUBE_URL": url, "MEMCUBE_USER": "alice", "MEMCUBE_API_KEY": key or ""}
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def test_keys_are_created_used_listed_and_revoked(serve: ServeFactory, tmp_path: Path) -> None:
    data = tmp_path / "data"
    created = operator(data, "keys", "create", "--user", "alice", "--label", "laptop")
    assert created.exit_code == 0, created.output
    key = created.stdout.strip()
    assert key.startswith("mck_") and "not shown again" in created.stderr
    server = serve(data_dir=data, env={"MEMCUBE_AUTH": "keys"})

    added = user_cli(server.url, key, "add", "I like green tea.")
    assert added.exit_code == 0, added.output
    refused = user_cli(server.url, None, "search", "tea")
    assert refused.exit_code == 1 and "server answered 401: Authorization: missing" in refused.output

    [listed] = [json.loads(line) for line in operator(data, "keys", "list", "--user", "alice").stdout.splitlines()]
    assert (listed["user_id"], listed["label"], listed["revoked_at"]) == ("alice", "laptop", None)
    assert "digest" not in listed and "salt" not in listed and secret_of(key) not in json.dumps(listed)
    stored = b"".join(p.read_bytes() for p in data.glob("store.db*"))
    assert secret_of(key).encode() not in stored  # only the salted digest is stored

    revoked = operator(data, "keys", "revoke", listed["key_id"])
    assert revoked.exit_code == 0 and "revoked" in revoked.stdout
    after = user_cli(server.url, key, "search", "tea")
    assert after.exit_code == 1 and "401" in after.output and "invalid or revoked" in after.output


@pytest.mark.parametrize("host", ["::", "192.168.1.10", "10.0.0.1", "example.com", "127.0.0.1.nip.io"])
def test_serving_on_any_non_loopback_address_or_name_without_keys_is_refused(host: str, tmp_path: Path) -> None:
    """S5 for every kind of address: any IPv4 or IPv6 wildcard or interface, and any name but localhost."""
    env = {"MEMCUBE_EMBEDDER": "hash", "MEMCUBE_AUTH": "none", "MEMCUBE_DATA_DIR": str(tmp_path / "d")}
    result = CliRunner().invoke(main, ["serve", "--host", host, "--port", str(free_port())], env=env)
    assert result.exit_code == 1
    assert f"refusing to listen on {host} without authentication: set MEMCUBE_AUTH=keys" in result.output
    assert not (tmp_path / "d").exists()  # refused before the data directory is touched


def test_serving_beyond_loopback_without_keys_is_refused(tmp_path: Path) -> None:
    cmd = [str(MEMCUBE), "serve", "--host", "0.0.0.0", "--port", str(free_port()), "--data-dir", str(tmp_path / "d")]
    env = {"PATH": "/usr/bin:/bin", "MEMCUBE_EMBEDDER": "hash", "HOME": str(tmp_path)}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env, check=False)
    assert done.returncode == 1
    assert "refusing to listen on 0.0.0.0 without authentication: set MEMCUBE_AUTH=keys" in done.stderr


def test_refusals_are_logged_with_their_fields_and_a_key_in_a_url_never_is(serve: ServeFactory, tmp_path: Path) -> None:
    import httpx

    data = tmp_path / "data"
    key = operator(data, "keys", "create", "--user", "alice").stdout.strip()
    secret = secret_of(key)
    server = serve(data_dir=data, env={"MEMCUBE_AUTH": "keys", "PYTHONUNBUFFERED": "1"})
    # A key sent in the query string (refused: keys go in the Authorization header), and a 403
    answer = httpx.get(f"{server.url}/product/scheduler/status?user_id=alice&api_key={key}", timeout=10)
    assert answer.status_code == 401
    answer = httpx.post(
        f"{server.url}/product/search",
        json={"user_id": "bob", "query": "tea"},
        headers={"Authorization": f"Token {key}"},
        timeout=10,
    )
    assert answer.status_code == 403
    log = server.output()
    assert secret not in log
    assert "api_key=***" in log  # uvicorn's access line, redacted
    [refused] = [line for line in log.splitlines() if "request refused" in line and "status=403" in line]
    for field in ("method='POST'", "path='/product/search'", "caller=", "alice", "reason=", "user_id: 'bob' is not"):
        assert field in refused, (field, refused)


def test_doctor_probes_the_embedded_index_and_leaves_nothing_behind(tmp_path: Path) -> None:
    data = tmp_path / "data"
    done = operator(data, "doctor")
    assert done.exit_code == 0, done.output
    checks = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(c["check"], c["ok"]) for c in checks] == [
        ("k-NN query runs", True),
        ("cube filter", True),
        ("filter before the limit", True),
        ("nearest first, cosine", True),
    ]
    assert b"memcube-doctor-" not in b"".join(p.read_bytes() for p in data.glob("index.db*"))
