"""The HTTP client of the daemon's own requests: webhooks, CloudPRNT and Server Direct Print."""

from __future__ import annotations

import importlib
from typing import Any


class LazyTreq:
    """
    treq's functions (``request``, ``collect``, ...), treq imported on the first one used: a
    daemon that sends no request (no webhook, no CloudPRNT, no Server Direct Print) never loads
    treq and twisted.web.client, half a megabyte of its idle memory.
    """

    def __getattr__(self, name: str) -> Any:
        return getattr(importlib.import_module("treq"), name)


treq = LazyTreq()
