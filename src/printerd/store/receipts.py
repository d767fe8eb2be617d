"""
Receipts as the store takes and returns them: plain data, the same whichever engine stores them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from datetime import datetime, timezone
from typing import Any, Iterable, Optional

from printerd.compact_json import compact_json


class _TimeFormat:
    """
    ``format_time``: the date and time to the second are formatted once per second, since
    every receipt of a busy second shares them (datetime's strftime was a few per cent of the
    raw port's time per receipt at one receipt per connection).
    """

    def __init__(self) -> None:
        # (second, its text): one tuple, replaced whole, so that a thread never reads one
        # second's number with another's text.
        self._last: tuple[Optional[datetime], str] = (None, "")

    def __call__(self, seconds: float) -> str:
        """UTC ISO 8601 with microseconds and a Z: fixed width, so it sorts as text."""
        moment = datetime.fromtimestamp(seconds, timezone.utc)
        second = moment.replace(microsecond=0)
        last = self._last
        if last[0] != second:
            last = self._last = (second, second.strftime("%Y-%m-%dT%H:%M:%S."))
        return f"{last[1]}{moment.microsecond:06d}Z"


format_time = _TimeFormat()


def parse_time(text: str) -> str:
    """An ISO 8601 time (naive means UTC) in the stored format; ValueError if it is not one."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return format_time(moment.timestamp())


# Every receipt's JSON has these, even receipts stored before the parser reported them.
EMPTY_DETAILS: dict[str, Any] = {"site": "", "barcodes": [], "codes_2d": [],
                                 "images": {"count": 0, "items": []}, "drawer_kicks": [],
                                 "unknown_commands": {}, "dialects": {}, "line_styles": []}


@dataclass(frozen=True)
class NewReceipt:
    """A parsed receipt waiting to be committed."""

    printer: str
    peer: str
    received_at: str
    job: int
    raw: bytes
    text: str
    cut: str
    truncated: bool
    details: str = "{}"  # structured content, JSON
    # A receipt forwarded by another printerd (POST /api/ingest): its key (site and
    # webhook-id: stored once, whatever the retries), and the digest and size of the bytes
    # the site received when the raw bytes did not come along.
    origin: Optional[str] = None
    sha256: Optional[str] = None
    size: Optional[int] = None

    def digest(self) -> str:
        return self.sha256 or hashlib.sha256(self.raw).hexdigest()

    def byte_count(self) -> int:
        return len(self.raw) if self.size is None else self.size

    def inserted_values(self, digest: str) -> tuple:
        """The values of ``INSERTED_COLUMNS`` for this draft (``digest``: its ``digest()``)."""
        return (self.printer, self.peer, self.received_at, self.job, self.byte_count(),
                self.raw, self.text, self.cut, digest, self.truncated, self.details, self.origin)

    def stored_as(self, receipt_id: int, digest: str) -> Receipt:
        """This draft as the receipt committed under ``receipt_id``."""
        return Receipt(receipt_id, self.printer, self.peer, self.received_at, self.job,
                       self.byte_count(), self.text, self.cut, self.truncated, digest,
                       self.details)


def with_site(details: str, site: str) -> str:
    """``details`` (JSON) naming ``site``, unless it names one already (a forwarded receipt)."""
    found = json.loads(details)
    found.setdefault("site", site)
    return compact_json(found)


@dataclass(frozen=True)
class Receipt:
    """A committed receipt, without its raw bytes."""

    id: int
    printer: str
    peer: str
    received_at: str
    job: int
    size: int  # bytes of raw data (the JSON's "bytes")
    text: str
    cut: str
    truncated: bool
    sha256: str
    details: str = "{}"  # structured content, JSON
    ocr_text: Optional[str] = None  # read from the images by OCR, once it has run

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "printer": self.printer, "peer": self.peer,
                "received_at": self.received_at, "job": self.job, "bytes": self.size,
                "text": self.text, "cut": self.cut, "truncated": self.truncated,
                "sha256": self.sha256, "ocr_text": self.ocr_text, **EMPTY_DETAILS,
                **json.loads(self.details)}

    @cached_property
    def site(self) -> str:
        """The site its details name (a webhook payload's ``site``), empty if none."""
        return self.to_json()["site"]

    @cached_property
    def json_bytes(self) -> bytes:
        """The receipt's JSON, encoded once and reused by /api/recent, the stream and webhooks."""
        found = self.to_json()
        self.__dict__["site"] = found["site"]  # read with it: details are decoded once
        return compact_json(found).encode()


@dataclass(frozen=True)
class RawReceipt:
    """A receipt's raw bytes and what reading them needs: its printer and its details."""

    printer: str
    details: str  # JSON
    raw: bytes


@dataclass(frozen=True)
class ReceiptQuery:
    """Filters for listing receipts, newest first."""

    limit: int = 50
    before: Optional[int] = None
    after: Optional[int] = None
    since: Optional[str] = None
    until: Optional[str] = None
    printer: Optional[str] = None
    text: Optional[str] = None


# The columns an engine inserts a draft into (values: ``NewReceipt.inserted_values``).
INSERTED_COLUMNS = ("printer, peer, received_at, job, bytes, raw, text, cut, sha256, truncated,"
                    " details, origin")
RECEIPT_COLUMNS = ("id, printer, peer, received_at, job, bytes, text, cut, truncated, sha256,"
                   " details, ocr_text")
# The same columns of the receipts table aliased ``r`` (in a join, or with filters on ``r``).
RECEIPT_COLUMNS_OF_R = ", ".join(f"r.{column.strip()}" for column in RECEIPT_COLUMNS.split(","))


def receipt_from_row(row: tuple) -> Receipt:
    """A Receipt from a row of RECEIPT_COLUMNS."""
    (id_, printer, peer, received_at, job, size, text, cut, truncated, sha256, details,
     ocr_text) = row
    return Receipt(id_, printer, peer, received_at, job, size, text, cut, bool(truncated), sha256,
                   details, ocr_text)


class ReceiptPage(list[Receipt]):
    """
    Receipts found, newest first.  A search that spent its time budget before it filled the
    page stops at an id: ``resume_before`` is then that id (ask again with ``before`` set to
    it for the older ones); None means the page holds every match it could.
    """

    def __init__(self, receipts: Iterable[Receipt] = (),
                 resume_before: Optional[int] = None) -> None:
        super().__init__(receipts)
        self.resume_before = resume_before


@dataclass(frozen=True)
class StoreSummary:
    """What the store loads at start: counts, the last job id, the newest receipts."""

    receipts: int
    last_job: int
    newest: list[Receipt]
    database_id: str = ""  # made at random with the database: another database, another id
