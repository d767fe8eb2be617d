"""Logs an operator can use: NDJSON lines, the log_format setting, the start-up banner."""

from __future__ import annotations

import io
import json
import re
import signal
import subprocess
import time

import pytest
from twisted.logger import LogPublisher, Logger
from twisted.python import log as legacy_log
from twisted.python.failure import Failure

import printerd
from bench.daemon import TWISTD, Daemon
from printerd.banner import Listening, banner_fields, banner_text, lan_addresses
from printerd.config import ConfigError, load_settings
from printerd.logs import json_stdout, ndjson_observer


def lines_logged(emit) -> list[dict]:
    stream = io.StringIO()
    publisher = LogPublisher(ndjson_observer(stream))
    emit(publisher)
    text = stream.getvalue()
    assert "\x1e" not in text  # no RFC 7464 record separators
    return [json.loads(line) for line in text.splitlines()]


def test_an_event_is_one_line_with_time_level_namespace_message_and_fields():
    [line] = lines_logged(lambda publisher: Logger(namespace="printerd.test", observer=publisher)
                          .warn("job {job} stored from {peer}", job=7, peer=object()))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", line["time"])
    assert line["level"] == "warn" and line["namespace"] == "printerd.test"
    assert line["message"].startswith("job 7 stored from <object object at ")
    # A value JSON cannot hold is written as its text.
    assert line["fields"]["job"] == 7 and line["fields"]["peer"].startswith("<object")


def test_twisteds_legacy_events_without_a_format_still_carry_their_message():
    def emit(publisher):
        legacy = legacy_log.LogPublisher(observerPublisher=publisher, publishPublisher=publisher)
        legacy.msg("Site starting on 8000")

    [line] = lines_logged(emit)
    assert line["message"] == "Site starting on 8000"


def test_a_logged_failure_carries_its_traceback():
    def emit(publisher):
        try:
            {}["missing"]
        except KeyError:
            Logger(namespace="printerd.test", observer=publisher).failure("render failed",
                                                                        Failure())

    [line] = lines_logged(emit)
    assert line["level"] == "critical" and line["message"] == "render failed"
    assert "KeyError: 'missing'" in line["traceback"]


def test_the_twistd_logger_factory_writes_ndjson_to_stdout(capsys):
    Logger(namespace="printerd.test", observer=json_stdout()).info("job {job} stored", job=7)
    line = json.loads(capsys.readouterr().out)
    assert line["message"] == "job 7 stored" and line["fields"] == {"job": 7}


def test_log_format_takes_text_or_json_only():
    assert load_settings({}, {"PRINTERD_LOG_FORMAT": "JSON"}).log_format == "json"
    assert load_settings({}, {}).log_format == "text"
    with pytest.raises(ConfigError, match="--log-format: 'xml' is not valid"):
        load_settings({"log_format": "xml"}, {})


def test_the_banner_names_version_database_listeners_page_and_lan_addresses_for_the_pos():
    fields = banner_fields("9.9", "/var/lib/printerd/printerd.sqlite3", [
        Listening("printers.kitchen", "tcp:9100", "0.0.0.0", 9100),
        Listening("printers.bar", "tcp:9101:interface=192.168.1.10", "192.168.1.10", 9101),
        Listening("http_listen", "tcp:8000", "0.0.0.0", 8000),
    ], lan=["192.168.1.10", "10.0.0.4"])
    assert fields["pos_addresses"] == {
        "printers.kitchen": ["192.168.1.10:9100", "10.0.0.4:9100"],
        "printers.bar": ["192.168.1.10:9101"],
    }
    assert fields["page"] == "http://192.168.1.10:8000/"
    text = banner_text(fields)
    assert text.startswith("printerd 9.9 ready: database /var/lib/printerd/printerd.sqlite3;")
    assert "printers.kitchen: 192.168.1.10:9100, 10.0.0.4:9100" in text


def test_a_loopback_page_and_a_unix_listener_are_named_as_they_are():
    fields = banner_fields("9.9", "db", [
        Listening("raw_listen", "unix:/run/printerd.sock", None, None),
        Listening("http_listen", "tcp:8000:interface=127.0.0.1", "127.0.0.1", 8000),
    ], lan=["192.168.1.10"])
    assert fields["page"] == "http://127.0.0.1:8000/"
    assert fields["pos_addresses"] == {"raw_listen": ["unix:/run/printerd.sock"]}


def test_lan_addresses_are_this_machines_and_never_loopback():
    import socket

    addresses = lan_addresses()
    for address in addresses:
        socket.inet_aton(address)
        assert not address.startswith("127.")


@pytest.mark.e2e
def test_printerd_run_with_json_logs_writes_only_json_lines_and_the_banner(tmp_path):
    daemon = Daemon(tmp_path, "--database=var/printerd.sqlite3", "--log-format=json", cli=True)
    try:
        daemon.wait_for(lambda: "ready: database" in daemon.log())
    finally:
        daemon.stop()
    lines = [json.loads(line) for line in daemon.log().splitlines()]
    [banner] = [line for line in lines if line["namespace"] == "printerd.banner.Banner"]
    assert banner["fields"]["version"] == printerd.__version__
    assert banner["fields"]["database"] == "var/printerd.sqlite3"
    assert banner["fields"]["page"] == f"http://127.0.0.1:{daemon.http_port}/"
    assert banner["fields"]["pos_addresses"] == {"raw_listen": [f"127.0.0.1:{daemon.raw_port}"]}
    assert any(line["message"] == "Server Shut Down." for line in lines)


@pytest.mark.e2e
def test_twistd_printerd_takes_log_format_too(tmp_path):
    log = tmp_path / "stdout.log"
    with open(log, "w") as stdout:
        process = subprocess.Popen(
            [TWISTD, "--nodaemon", "--pidfile=", "printerd", "--log-format=json",
             "--raw-listen=tcp:0:interface=127.0.0.1", "--http-listen=tcp:0:interface=127.0.0.1",
             "--database=var/printerd.sqlite3"], cwd=tmp_path, stdout=stdout)
    try:
        deadline = time.monotonic() + 30
        while "ready: database" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert any(line["namespace"] == "printerd.banner.Banner" for line in lines)


def test_a_client_in_a_loop_gets_a_bounded_access_log_and_every_request_is_counted(tmp_path):
    import http.client

    daemon = Daemon(tmp_path, "--api-rate=0")
    try:
        connection = http.client.HTTPConnection("127.0.0.1", daemon.http_port, timeout=10)
        for _ in range(200):
            connection.request("GET", "/api/health")
            connection.getresponse().read()
        connection.close()

        def counted() -> tuple[int, int] | None:
            """(requests with a line, requests summed up), once all 200 are in the log."""
            log = daemon.log()
            lines = log.count('"GET /api/health HTTP/1.1" 200')
            summed = sum(int(n) for n in re.findall(
                r"(\d+) more HTTP requests \(by status: 200 x\d+\)", log))
            return (lines, summed) if lines + summed == 200 else None

        lines, summed = daemon.wait_for(counted)
        assert summed > 0 and lines < 200
    finally:
        daemon.stop()
