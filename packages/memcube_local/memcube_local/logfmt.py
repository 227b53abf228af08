"""Logs of the embedded default (`memcube serve`): what an operator needs, never a secret.

- `FieldsFormatter` writes a record's structured fields (the `extra=` of the call: a refusal's
  status, code, method, path, caller and reason) after its message, as `key=value`, the way the
  powertools JSON logger shows them on AWS; a plain `%(message)s` format dropped them.
- `redact_url` hides credentials in a URL (an API key in the query string or anywhere in the
  path, and the values of query parameters named like credentials); `RedactingFilter` applies it
  to uvicorn's access log, which writes each request's full path and query.
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Any

from memcube.domain.auth import PREFIX

_KEY = re.compile(rf"{PREFIX}_([0-9a-fA-F]{{16}})_[A-Za-z0-9_-]+")
_SECRET_PARAM = re.compile(
    r"(?i)([?&;](?:api[_-]?key|key|token|access[_-]?token|id[_-]?token|auth|authorization|secret|password|"
    r"signature|x-amz-signature|x-amz-security-token)=)[^&;#\s]*"
)
REDACTED = "***"
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "color_message"}


def redact_url(text: str) -> str:
    """`text` with every API key's secret and every credential-named query value replaced."""
    text = _KEY.sub(rf"{PREFIX}_\1_{REDACTED}", text)
    return _SECRET_PARAM.sub(rf"\1{REDACTED}", text)


class FieldsFormatter(logging.Formatter):
    """The usual line, then the record's own fields as `key=value` (strings quoted)."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}
        if not fields:
            return line
        return line + " " + " ".join(f"{k}={_value(v)}" for k, v in fields.items())


def _value(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


class RedactingFilter(logging.Filter):
    """Redacts credentials in a record's message and string arguments (uvicorn's access log
    passes the request line's path and query as an argument)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact_url(a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = redact_url(record.msg)
        return True


FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def handler() -> logging.Handler:
    """The embedded server's log handler: fields kept, credentials redacted (stderr)."""
    out = logging.StreamHandler()
    out.setFormatter(FieldsFormatter(FORMAT))
    out.addFilter(RedactingFilter())
    return out


def configure() -> dict[str, Any]:
    """Set up the process's logging for `memcube serve`, and return the log config to give uvicorn
    (its own, with the access log redacted and every record's fields kept)."""
    logging.basicConfig(level=logging.INFO, handlers=[handler()], force=True)
    return uvicorn_log_config()


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's own log config with every handler (the access log's too) redacting credentials."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["redact"] = {"()": RedactingFilter}
    for handler_config in config["handlers"].values():
        handler_config.setdefault("filters", []).append("redact")
    return config
