"""Start the real daemon (twistd -n printerd) in a subprocess on ephemeral ports (tests, bench)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable, Optional

TWISTD = str(Path(sys.executable).parent / "twistd")
PRINTERD = str(Path(sys.executable).parent / "printerd")
ROOT = Path(__file__).resolve().parents[1]
_LISTENING = re.compile(
    r"(raw_listen|http_listen|epos_listen|printers\.[\w.-]+) listening on .*port=(\d+)")


def _printer_count(options: tuple[str, ...]) -> int:
    """How many raw listeners (and ePOS-Print listeners) the options ask for."""
    extra = sum(1 for option in options if option.startswith("--epos-listen=") and option[14:])
    for option in options:
        if option.startswith("--printers="):
            return len(json.loads(option.split("=", 1)[1])) + extra
    return 1 + extra


class Daemon:
    """A running printerd; ``raw_port`` and ``http_port`` are where it listens."""

    def __init__(self, workdir: Path, *options: str, env: dict | None = None,
                 tac: bool = False, cli: bool = False,
                 wrapper: tuple[str, ...] = ()) -> None:
        """
        ``cli``: start it as ``printerd run`` (logging to stdout) instead of twistd.
        ``wrapper``: a command that execs the daemon, e.g. ``("prlimit", "--nofile=1024")``.
        """
        self.workdir = workdir
        self.log_path = workdir / f"twistd-{time.monotonic_ns()}.log"
        listeners = ["--raw-listen=tcp:0:interface=127.0.0.1:backlog=512",
                     "--http-listen=tcp:0:interface=127.0.0.1"]
        if cli:
            command = [*wrapper, PRINTERD, "run", *listeners, *options]
        else:
            command = [*wrapper, TWISTD, "--nodaemon", "--pidfile=",
                       f"--logfile={self.log_path}"]
            command += ["-y", str(ROOT / "printerd.tac")] if tac \
                else ["printerd", *listeners, *options]
        # printerd run logs to its standard output: that is its log file here.
        with open(self.log_path, "w") if cli else open(os.devnull, "w") as log:
            self.process = subprocess.Popen(command, cwd=workdir,
                                            # No /etc/printerd/printerd.toml: only
                                            # what the caller gives.
                                            env={**os.environ, "PRINTERD_CONFIG": "",
                                                 **(env or {})},
                                            stdout=log if cli else None,
                                            stderr=subprocess.PIPE, text=True)
        self.ports = self._wait_for_ports(1 + _printer_count(options))
        self.http_port = self.ports["http_listen"]
        self.raw_port = self.ports.get("raw_listen") or next(
            port for name, port in self.ports.items() if name.startswith("printers."))

    def _wait_for_ports(self, expected: int, timeout: float = 20.0) -> dict[str, int]:
        """Every listener's port, from the log: {"http_listen": n, "raw_listen": n, ...}."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"printerd exited: {self.process.stderr.read()}")
            ports = {name: int(port) for name, port in _LISTENING.findall(self.log())}
            if len(ports) >= expected and "http_listen" in ports:
                return ports
            time.sleep(0.05)
        raise RuntimeError("printerd did not start listening:\n" + self.log())

    def log(self) -> str:
        try:
            return self.log_path.read_text()
        except FileNotFoundError:
            return ""

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.http_port}{path}"

    # The tests set this to check every answer against the OpenAPI document.
    response_check: Optional[Callable[[str, str, int, Any], None]] = None

    def get(self, path: str) -> tuple[int, dict]:
        try:
            with urllib.request.urlopen(self.url(path), timeout=10) as response:
                status, body = response.status, json.loads(response.read())
        except urllib.error.HTTPError as e:
            status, body = e.code, json.loads(e.read())
        if Daemon.response_check is not None:
            Daemon.response_check("GET", path, status, body)
        return status, body

    def wait_for(self, condition, timeout: float = 20.0):
        return wait_for(condition, timeout)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout)


def as_operated(workdir: Path, *options: str) -> Daemon:
    """
    printerd as an operator runs it, ``printerd run`` (the README's "Running it as an
    operator"; the container's entry point): what the performance scenarios measure.
    ``twistd printerd`` is the same daemon plus twistd's loading of every installed plugin's
    metadata (it imports trial and unittest: about 1 MB more resident).
    """
    return Daemon(workdir, *options, cli=True)


def wait_for(condition, timeout: float = 20.0):
    """``condition()``'s first true value, asked every 50 ms; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")
