"""
Keeps the lock files honest about setup.cfg: ``make lock`` stamps each lock with a digest of
setup.cfg's dependencies (install_requires and the extras); ``make setup`` refuses to install
from a lock whose stamp differs, since the lock would then miss what setup.cfg declares.

    python3 requirements/lockcheck.py stamp LOCK...
    python3 requirements/lockcheck.py check LOCK...

Standard library only: it runs before the virtual environment exists.
"""

from __future__ import annotations

import configparser
import hashlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "# setup.cfg dependencies: sha256 "


def dependencies_digest(setup_cfg: Path = ROOT / "setup.cfg") -> str:
    config = configparser.ConfigParser(interpolation=None)
    config.read(setup_cfg)
    parts = ["install_requires", config.get("options", "install_requires", fallback="")]
    if config.has_section("options.extras_require"):
        parts += [f"{k}={v}" for k, v in sorted(config.items("options.extras_require"))]
    # Comments and blank lines do not change what gets installed.
    lines = [line.split("#", 1)[0].strip() for part in parts for line in part.splitlines()]
    return hashlib.sha256("\n".join(line for line in lines if line).encode()).hexdigest()


def stamp(lock: Path, digest: str) -> None:
    lines = [line for line in lock.read_text().splitlines() if not line.startswith(PREFIX)]
    lock.write_text("\n".join([PREFIX + digest, *lines]) + "\n")


def check(lock: Path, digest: str) -> bool:
    if not lock.exists():
        print(f"{lock.name} is missing: run `make lock`", file=sys.stderr)
        return False
    first = lock.read_text().split("\n", 1)[0]
    if first != PREFIX + digest:
        print(f"error: setup.cfg's dependencies changed since {lock.name} was "
              "made; run `make lock` (and commit the lock files) to install them",
              file=sys.stderr)
        return False
    return True


def main(argv: list[str]) -> int:
    action, locks = argv[0], [Path(p).resolve() for p in argv[1:]]
    digest = dependencies_digest()
    if action == "stamp":
        for lock in locks:
            stamp(lock, digest)
        return 0
    if action == "check":
        return 0 if all([check(lock, digest) for lock in locks]) else 1
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
