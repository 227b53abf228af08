"""The embedded server's log lines (issue 17, finding 7): a record's fields are written, and no
credential in a URL survives, wherever in the URL it is."""

from __future__ import annotations

import logging

import pytest

from memcube_local import logfmt

KEY = "mck_0123456789abcdef_" + "S" * 43


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"/product/search?api_key={KEY}", "/product/search?api_key=***"),
        (f"/product/search?user_id=a&key={KEY}&x=1", "/product/search?user_id=a&key=***&x=1"),
        ("/x?token=abc&Authorization=Token%20zz", "/x?token=***&Authorization=***"),
        (f"/product/get_memory/{KEY}", "/product/get_memory/mck_0123456789abcdef_***"),
        (f"/x?q={KEY}", "/x?q=mck_0123456789abcdef_***"),
        ("/product/search?user_id=alice&query=keyboard", "/product/search?user_id=alice&query=keyboard"),
    ],
)
def test_credentials_in_a_url_are_redacted_wherever_they_are(url: str, expected: str) -> None:
    assert logfmt.redact_url(url) == expected


def test_an_access_log_record_loses_its_credentials_and_a_refusal_keeps_its_fields() -> None:
    handler = logfmt.handler()
    access = logging.LogRecord(
        "uvicorn.access", logging.INFO, "", 0, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", f"/product/scheduler/status?api_key={KEY}", "1.1", 401), None,
    )  # fmt: skip
    assert handler.filter(access)
    assert KEY not in handler.format(access)
    refusal = logging.LogRecord("memcube_api.errors", logging.WARNING, "", 0, "request refused", None, None)
    refusal.__dict__ |= {"status": 403, "method": "POST", "path": "/product/search", "caller": "alice", "reason": "no"}
    line = handler.format(refusal)
    assert line.endswith("request refused status=403 method='POST' path='/product/search' caller='alice' reason='no'")


def test_the_uvicorn_config_redacts_every_handler() -> None:
    config = logfmt.uvicorn_log_config()
    assert config["handlers"] and all("redact" in h["filters"] for h in config["handlers"].values())
