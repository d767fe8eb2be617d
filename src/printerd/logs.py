"""
Logs for log shippers: the ``log_format = "json"`` setting (or ``twistd
--logger=printerd.logs.json_stdout``) writes one JSON object per line (NDJSON) to standard output:

    {"time": "2026-11-29T16:56:10.123456Z", "level": "info", "namespace": "printerd.rawport...",
     "message": "job 7 printer=default ...", "fields": {"job": 7, "printer": "default", ...}}

``message`` is the event rendered as the text log shows it, also for Twisted's own events that
have no format (their text); a logged failure adds ``traceback``. No RFC 7464 record separators
(Twisted's ``jsonFileLogObserver`` writes them; most shippers expect plain lines).
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from typing import IO, Any, Optional

from twisted.logger import ILogObserver, LogLevel, eventAsText
from zope.interface import provider

# Keys of Twisted's legacy log events (log.msg) that duplicate what the message already says.
_LEGACY_KEYS = {"message", "format", "isError", "failure", "why", "time", "printed"}


def event_as_json(event: dict[str, Any]) -> str:
    """One log event as a JSON object on one line (no newline)."""
    level = event.get("log_level")
    when = datetime.fromtimestamp(event.get("log_time") or 0, tz=timezone.utc)
    record: dict[str, Any] = {
        "time": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        # LogLevel's members are constantly's NamedConstants, not LogLevel instances.
        "level": level.name if level is not None and level in LogLevel.iterconstants()
        else "info",
        "namespace": event.get("log_namespace") or event.get("system") or "-",
        "message": eventAsText(event, includeTraceback=False, includeTimestamp=False,
                               includeSystem=False),
    }
    fields = {key: value for key, value in event.items()
              if not key.startswith("log_") and key not in _LEGACY_KEYS}
    if fields:
        record["fields"] = fields
    failure = event.get("log_failure")
    if failure is not None:
        record["traceback"] = failure.getTraceback()
    return json.dumps(record, default=str, ensure_ascii=False)


def ndjson_observer(stream: IO[str]) -> ILogObserver:
    """An observer writing each event to ``stream`` as one JSON line, flushed at once."""

    @provider(ILogObserver)
    def observe(event: dict[str, Any]) -> None:
        stream.write(event_as_json(event) + "\n")
        stream.flush()

    return observe


def json_stdout() -> ILogObserver:
    """twistd ``--logger`` factory: JSON lines on stdout (twistd calls it with no arguments)."""
    return ndjson_observer(sys.stdout)


def observer_for(log_format: str, stream: Optional[IO[str]] = None) -> Optional[ILogObserver]:
    """The observer for the ``log_format`` setting; None for text (twistd's own observer)."""
    if log_format == "json":
        # Captured now, before twistd redirects sys.stdout into the log.
        return ndjson_observer(stream or sys.stdout)
    return None
