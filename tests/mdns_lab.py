"""
A private two-host LAN for the discovery tests, so no multicast leaves the machine: two network
namespaces joined by a veth pair, each with its own D-Bus system bus and Avahi daemon (Debian's
dbus-daemon, avahi-daemon, avahi-utils; root for namespaces).  Host "a" is where printerd
publishes (its avahi-publish talks to bus a); host "b" browses and resolves over the wire with
avahi-browse on bus b.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

TOOLS = ("ip", "unshare", "dbus-daemon", "avahi-daemon", "avahi-browse", "avahi-publish")

BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"""

AVAHI_CONFIG = """[server]
host-name=printerd-lab-{side}
use-ipv4=yes
use-ipv6=no
allow-interfaces={interface}
enable-dbus=yes
[wide-area]
enable-wide-area=no
[publish]
publish-hinfo=no
publish-workstation=no
"""


def require_lab() -> None:
    """Skip without root or the tools (PRINTERD_REQUIRE_AVAHI=1, as in CI, makes it a failure)."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    problem = (f"missing {', '.join(missing)} (apt-get install avahi-daemon avahi-utils "
               "dbus-daemon iproute2)" if missing else
               "needs root for network namespaces" if os.geteuid() != 0 else None)
    if problem is None:
        return
    if os.environ.get("PRINTERD_REQUIRE_AVAHI") == "1":
        raise RuntimeError(f"PRINTERD_REQUIRE_AVAHI=1 but the mDNS lab {problem}")
    pytest.skip(problem)


class MdnsLab:
    """The two hosts; ``bus(side)`` is the D-Bus address for ``DBUS_SYSTEM_BUS_ADDRESS``."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        tag = f"{os.getpid() % 100000}"
        self.netns = {side: f"pdmdns{tag}{side}" for side in "ab"}
        self.interface = {side: f"pdm{tag}{side}" for side in "ab"}
        self.processes: list[subprocess.Popen] = []

    def bus(self, side: str) -> str:
        return f"unix:path={self.workdir / f'bus-{side}'}"

    def env(self, side: str) -> dict[str, str]:
        return {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": self.bus(side)}

    def start(self) -> MdnsLab:
        for side in "ab":
            _run("ip", "netns", "add", self.netns[side])
        _run("ip", "link", "add", self.interface["a"], "netns", self.netns["a"], "type", "veth",
             "peer", "name", self.interface["b"], "netns", self.netns["b"])
        for number, side in enumerate("ab", start=1):
            _run("ip", "-n", self.netns[side], "addr", "add", f"10.213.7.{number}/24", "dev",
                 self.interface[side])
            _run("ip", "-n", self.netns[side], "link", "set", self.interface[side], "up")
            bus_config = self.workdir / f"bus-{side}.conf"
            bus_config.write_text(BUS_CONFIG.format(socket=self.workdir / f"bus-{side}"))
            self._spawn(["dbus-daemon", "--nofork", f"--config-file={bus_config}"], side)
            avahi_config = self.workdir / f"avahi-{side}.conf"
            avahi_config.write_text(AVAHI_CONFIG.format(side=side,
                                                        interface=self.interface[side]))
            bus = self.workdir / f"bus-{side}"
            self._wait(bus.exists, "dbus-daemon")
            # Its own /run/avahi-daemon (pid file, socket): the machine's Avahi may run too.
            self._spawn(["ip", "netns", "exec", self.netns[side], "unshare", "--mount", "sh",
                         "-c", "mount -t tmpfs tmpfs /run/avahi-daemon && exec avahi-daemon "
                         f"-f {avahi_config} --no-drop-root --no-chroot --no-rlimits"], side)
        for side in "ab":
            self._wait(lambda side=side: "Server startup complete" in self.log(side),
                       "avahi-daemon")
        return self

    def _spawn(self, command: list[str], side: str) -> None:
        log = open(self.workdir / f"lab-{side}.log", "a")
        self.processes.append(subprocess.Popen(command, env=self.env(side), stdout=log,
                                               stderr=subprocess.STDOUT))

    def log(self, side: str) -> str:
        return (self.workdir / f"lab-{side}.log").read_text()

    def _wait(self, condition, what: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.05)
        raise RuntimeError(f"{what} did not start:\n{self.log('a')}\n{self.log('b')}")

    def browse(self, service_type: str, timeout: float = 15.0) -> list[list[str]]:
        """Host b's resolved ``=`` lines of ``avahi-browse -rtp`` (parsable), over the wire."""
        done = subprocess.run(["avahi-browse", "--resolve", "--terminate", "--parsable",
                               "--no-db-lookup", service_type], env=self.env("b"),
                              capture_output=True, text=True, timeout=timeout)
        return [line.split(";") for line in done.stdout.splitlines() if line.startswith("=")]

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for side in "ab":
            subprocess.run(["ip", "netns", "del", self.netns[side]], capture_output=True)


def _run(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True, timeout=30)
