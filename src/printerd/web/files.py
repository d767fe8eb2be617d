"""The page's files, read from the installed package (they are few and small: read once)."""

from __future__ import annotations

from functools import cache
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


@cache
def _files() -> dict[str, tuple[bytes, bytes]]:
    """Every file of the page by name, read once: the set is fixed at install."""
    found = {}
    for resource in files("printerd.web").joinpath("static").iterdir():
        extension = resource.name.rpartition(".")[2]
        if resource.is_file() and not resource.name.startswith(".") \
                and extension in CONTENT_TYPES:
            found[resource.name] = (resource.read_bytes(), CONTENT_TYPES[extension])
    return found


def static_file(name: str) -> Optional[tuple[bytes, bytes]]:
    """(content, content type) of a file of the page, or None when there is no such file."""
    # A lookup in the fixed set: a name asked for is never remembered.
    return _files().get(name)
