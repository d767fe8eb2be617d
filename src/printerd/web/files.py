"""The page's files, read from the installed package (they are few and small: read once)."""

from __future__ import annotations

from functools import lru_cache
from importlib.resources import files
from typing import Optional

CONTENT_TYPES = {
    "html": b"text/html; charset=utf-8",
    "js": b"text/javascript; charset=utf-8",
    "css": b"text/css; charset=utf-8",
}
# Scripts only from this printerd; inline styles are allowed for the receipt renderings.
CONTENT_SECURITY_POLICY = (b"default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                           b"img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
                           b"base-uri 'none'; form-action 'self'")


@lru_cache(maxsize=None)
def static_file(name: str) -> Optional[tuple[bytes, bytes]]:
    """(content, content type) of a file of the page, or None when there is no such file."""
    extension = name.rpartition(".")[2]
    if "/" in name or name.startswith(".") or extension not in CONTENT_TYPES:
        return None
    resource = files("printerd.web").joinpath("static", name)
    if not resource.is_file():
        return None
    return resource.read_bytes(), CONTENT_TYPES[extension]
