"""Log formats of the standalone server: the plain text default, and JSON lines.

The JSON format writes one object per line with the record's time, level, logger and
message, and every ``extra=`` field the record carries: the middleware's decision lines
carry :data:`~snsmiddleware.middleware.DECISION_LOG_FIELDS` (reason, status, path and, for
a verified message, its type, MessageId and TopicArn), so a log shipper can filter on them
without parsing the text. ``json.dumps`` with ASCII output escapes every control character,
quote and non-ASCII character, so no field (a sender's text included) can break the line
or forge another one. Standard library only.
"""

from __future__ import annotations

import json
import logging
import math
from datetime import UTC, datetime
from typing import Any, Final

#: The plain format (the default).
PLAIN_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_FORMATS: Final = ("plain", "json")

# The attributes every LogRecord has; anything else on a record came in through ``extra=``.
_STANDARD_ATTRIBUTES: Final = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__
) | {"message", "asctime", "taskName"}


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN or Infinity
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


class JsonLineFormatter(logging.Formatter):
    """One JSON object per record, on one line: ``time`` (ISO 8601, UTC), ``level``,
    ``logger``, ``message``, then the record's ``extra=`` fields, and ``exception`` (the
    formatted traceback) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in record.__dict__.items():
            if name not in _STANDARD_ATTRIBUTES and name not in document:
                document[name] = _jsonable(value)
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            document["stack"] = self.formatStack(record.stack_info)
        return json.dumps(document, ensure_ascii=True, allow_nan=False, default=str)


def make_formatter(log_format: str) -> logging.Formatter:
    """The formatter for ``plain`` or ``json``."""
    if log_format == "json":
        return JsonLineFormatter()
    if log_format == "plain":
        return logging.Formatter(PLAIN_FORMAT)
    raise ValueError(f"{log_format!r} is not one of {', '.join(LOG_FORMATS)}")
