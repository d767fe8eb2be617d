"""
Discovery: printerd's printers advertised with mDNS/DNS-SD through Avahi, resolved by a real
DNS-SD client (avahi-browse) on another host of a private two-namespace LAN (``mdns_lab``).
"""

from __future__ import annotations

import json
import os
import stat

import pytest
import pytest_twisted
from twisted.internet import reactor

from bench.daemon import Daemon
from mdns_lab import MdnsLab, require_lab
from printerd.backoff import Backoff
from printerd.escpos.status import PrinterIdentity
from printerd.mdns import AvahiPublisher, printer_advertisement, publish_arguments
from support import wait_until


def test_a_printer_is_advertised_with_the_bonjour_printing_txt_keys():
    ad = printer_advertisement("kitchen", PrinterIdentity(maker="EPSON", model="TM-T20III"),
                               9100)
    assert (ad.name, ad.service_type, ad.port) == (
        "EPSON TM-T20III (kitchen)", "_pdl-datastream._tcp", 9100)
    assert ad.txt == ("txtvers=1", "qtotal=1", "ty=EPSON TM-T20III", "product=(TM-T20III)",
                      "usb_MFG=EPSON", "usb_MDL=TM-T20III", "note=kitchen")
    assert publish_arguments("/usr/bin/avahi-publish", ad)[:5] == [
        "/usr/bin/avahi-publish", "--service", "EPSON TM-T20III (kitchen)",
        "_pdl-datastream._tcp", "9100"]
    long = printer_advertisement("p" * 64, PrinterIdentity(), 9100)
    assert len(long.name.encode()) == 63  # a DNS label


@pytest.fixture
def lab(tmp_path):
    require_lab()
    running = MdnsLab(tmp_path).start()
    yield running
    running.stop()


def test_the_daemon_advertises_each_printer_and_a_dns_sd_client_resolves_them(tmp_path, lab):
    # Advertised printers listen beyond loopback (all interfaces: nothing is sent anywhere); a
    # printer on 127.0.0.1 only is not advertised, other machines could not reach it.
    printers = {"kitchen": "tcp:0", "bar": {"listen": "tcp:0", "emulation": "star"},
                "local": "tcp:0:interface=127.0.0.1"}
    daemon = Daemon(tmp_path, f"--printers={json.dumps(printers)}", "--mdns",
                    "--epos-listen=tcp:0", env={"DBUS_SYSTEM_BUS_ADDRESS": lab.bus("a")})
    try:
        def both():
            found = {line[3]: line for line in lab.browse("_pdl-datastream._tcp")}
            return found if len(found) == 2 else None
        found = daemon.wait_for(both, timeout=30)
        kitchen = found["EPSON\\032TM-T88V\\032\\040kitchen\\041"]
        bar = found["STAR\\032TSP143IIIU\\032\\040bar\\041"]
        # Resolved on host b: host a's address, each printer's own raw port, its TXT keys.
        assert (kitchen[7], int(kitchen[8])) == ("10.213.7.1", daemon.ports["printers.kitchen"])
        assert (bar[7], int(bar[8])) == ("10.213.7.1", daemon.ports["printers.bar"])
        assert '"ty=EPSON TM-T88V"' in kitchen[9] and '"product=(TM-T88V)"' in kitchen[9]
        assert '"usb_MDL=TSP143IIIU"' in bar[9] and '"note=bar"' in bar[9]
        # The ePOS-Print endpoint, as a web service on its own listener.
        (epos,) = daemon.wait_for(lambda: lab.browse("_http._tcp"), timeout=30)
        assert (epos[3], int(epos[8])) == ("printerd\\032ePOS-Print", daemon.ports["epos_listen"])
        assert '"path=/cgi-bin/epos/service.cgi"' in epos[9]
        states = {p["name"]: p["mdns"] for p in daemon.get("/api/printers")[1]["printers"]}
        assert states["kitchen"]["state"] == "published"
        assert states["kitchen"]["name"] == "EPSON TM-T88V (kitchen)"
        assert states["local"]["state"] == "failed"
        assert "no TCP port that other machines can reach" in states["local"]["last_error"]
    finally:
        daemon.stop()
    # Stopped: the advertisements are withdrawn (Avahi says goodbye on the wire).
    daemon.wait_for(lambda: lab.browse("_pdl-datastream._tcp") == [], timeout=20)


def test_mdns_is_off_by_default_and_refused_without_avahi_publish(capsys):
    from printerd.tap import Options

    options = Options()
    options.parseOptions([])
    assert options.settings.mdns is False
    with pytest.raises(SystemExit):
        Options().parseOptions(["--mdns", "--mdns-command=no-such-avahi-publish"])
    assert "mdns_command: 'no-such-avahi-publish' not found" in capsys.readouterr().err


def stand_in(tmp_path, name: str, script: str) -> str:
    """A stand-in for avahi-publish (only the process supervision is tested with it)."""
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


@pytest_twisted.ensureDeferred
async def test_a_publisher_that_ends_is_started_again_and_stop_ends_it(tmp_path):
    flag = tmp_path / "avahi-up"
    command = stand_in(tmp_path, "publish", (
        f'[ -e {flag} ] || {{ echo "Failed to connect to Avahi server: Daemon not running"; '
        'exit 1; }\n'
        'echo "Established under name \'$2 #2\'"\nexec sleep 60\n'))
    ad = printer_advertisement("kitchen", PrinterIdentity(), 9100)
    publisher = AvahiPublisher(reactor, "kitchen", command, lambda: ad, os.environ,
                               backoff=Backoff(first=0.05, cap=0.1))
    publisher.startService()
    try:
        await wait_until(lambda: publisher.restarts_total >= 2)
        assert publisher.state in ("failed", "starting")
        assert publisher.to_json()["last_error"] == \
            "Failed to connect to Avahi server: Daemon not running"
        flag.touch()  # Avahi is up now
        await wait_until(lambda: publisher.state == "published")
        assert publisher.published_as == "EPSON TM-T88V (kitchen) #2"  # Avahi renamed it
    finally:
        await publisher.stopService()
    assert publisher.to_json()["state"] == "stopped"
