"""
The container image, built from the Dockerfile and run with podman (runc, as root).

No registry is reachable here, so the base image is made from Debian's packages
(``.ci/container-base``, cached under /var/tmp) and passed as the ``BASE_IMAGE`` build argument.
Without root, podman, runc or debootstrap the tests skip with the reason; ``.ci/run`` installs
them and sets ``PRINTERD_REQUIRE_CONTAINER=1``, which turns a skip into a failure.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from escpos.printer import Network

ROOT = Path(__file__).resolve().parents[1]
# crun cannot set rlimits on this kind of machine; runc can, given limits it may set.
PODMAN = ["podman", "--runtime", "runc"]
LIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1000:1000"]
TOKEN = "container-test-token"

pytestmark = pytest.mark.e2e


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "the container test runs podman as root"
    for tool in ("podman", "runc", "debootstrap"):
        if shutil.which(tool) is None:
            return f"the container test needs {tool} (apt-get install podman runc debootstrap)"
    return None


@pytest.fixture(scope="module")
def image() -> str:
    missing = _missing()
    if missing:
        if os.environ.get("PRINTERD_REQUIRE_CONTAINER") == "1":
            pytest.fail(missing)
        pytest.skip(missing)
    base = subprocess.run([str(ROOT / ".ci" / "container-base")], capture_output=True,
                          text=True, timeout=900)
    assert base.returncode == 0, base.stderr[-3000:]
    # One tag per work tree: the build cache makes a rebuild after a source change seconds.
    tag = "localhost/printerd-test:" + hashlib.sha256(str(ROOT).encode()).hexdigest()[:12]
    build = [*PODMAN, "build", "--format", "docker", *LIMITS, "--network", "host",
             "--build-arg", f"BASE_IMAGE={base.stdout.strip()}", "-t", tag]
    # Behind a TLS-inspecting proxy pip needs the machine's CA bundle, as pip here does.
    cert = os.environ.get("PIP_CERT")
    if cert and Path(cert).is_file():
        build += ["--volume", f"{cert}:/etc/ssl/pip-ca.crt:ro",
                  "--build-arg", "PIP_CERT=/etc/ssl/pip-ca.crt"]
    result = subprocess.run([*build, str(ROOT)], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return tag


class Container:
    """One ``podman run -d`` of the image, its ports published on 127.0.0.1."""

    def __init__(self, image: str, *options: str) -> None:
        self.name = f"printerd-test-{uuid.uuid4().hex[:12]}"
        run = subprocess.run([*PODMAN, "run", "-d", "--name", self.name, *LIMITS,
                              "-p", "127.0.0.1::8000", "-p", "127.0.0.1::9100", *options, image],
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr

    def podman(self, *arguments: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([*PODMAN, *arguments], capture_output=True, text=True,
                              timeout=timeout)

    def port(self, inside: int) -> int:
        out = self.podman("port", self.name, f"{inside}/tcp").stdout.strip()
        return int(out.rsplit(":", 1)[1])

    def get(self, path: str, token: str | None = None) -> tuple[int, dict]:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port(8000)}{path}")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def wait_until_serving(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.get("/api/health")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError("the container did not serve:\n" + self.logs())

    def logs(self) -> str:
        result = self.podman("logs", self.name)
        return result.stdout + result.stderr

    def wait(self, timeout: float = 60) -> int:
        return int(self.podman("wait", self.name, timeout=timeout).stdout.strip())

    def remove(self) -> None:
        self.podman("rm", "-f", "-v", "-t", "5", self.name)  # -v: its anonymous volume too


@pytest.fixture
def volume():
    name = f"printerd-test-{uuid.uuid4().hex[:12]}"
    yield name
    subprocess.run([*PODMAN, "volume", "rm", "-f", name], capture_output=True, timeout=60)


def test_the_image_takes_pos_jobs_serves_them_with_a_token_and_keeps_them_on_its_volume(
        image, volume, tmp_path):
    token_file = tmp_path / "printerd_api_token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o644)  # the daemon runs as an unprivileged user inside
    options = ["-v", f"{volume}:/var/lib/printerd",
               "-v", f"{token_file}:/run/secrets/printerd_api_token:ro"]
    first = Container(image, *options)
    try:
        first.wait_until_serving()
        # Reachable from outside the container, and only with the token.
        assert first.get("/api/receipts")[0] == 401
        assert first.podman("exec", first.name, "id", "-u").stdout.strip() == "10001"
        pos = Network("127.0.0.1", port=first.port(9100), timeout=10)
        pos.text("Printed into a container\n")
        pos.cut()
        pos.close()
        deadline = time.monotonic() + 30
        while first.get("/api/receipts", TOKEN)[1]["receipts"] == [] \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        receipts = first.get("/api/receipts", TOKEN)[1]["receipts"]
        assert [r["text"] for r in receipts] == ["Printed into a container"]
        # The image's HEALTHCHECK, run the way the engine runs it.
        assert first.podman("healthcheck", "run", first.name).returncode == 0
        # SIGTERM: a clean shutdown.
        first.podman("stop", "-t", "30", first.name, timeout=90)
        assert first.wait() == 0
        assert "Server Shut Down." in first.logs()
    finally:
        first.remove()
    second = Container(image, *options)
    try:
        second.wait_until_serving()
        receipts = second.get("/api/receipts", TOKEN)[1]["receipts"]
        assert [r["text"] for r in receipts] == ["Printed into a container"]
    finally:
        second.remove()


def test_without_a_token_the_image_refuses_to_start_and_says_why(image):
    container = Container(image)
    try:
        assert container.wait() != 0
        assert "printerd: error: api_tokens_file: cannot read " \
               "/run/secrets/printerd_api_token" in container.logs()
    finally:
        container.remove()
