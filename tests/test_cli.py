"""The printerd command: run, render, version, and the one version it reports everywhere."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from importlib.metadata import version as installed_version
from pathlib import Path

import pytest
from PIL import Image

import printerd
from bench.daemon import PRINTERD, TWISTD, Daemon
from printerd.cli import main
from printerd.escpos.parser import JobParser, ParsedReceipt
from printerd.render.text import render_text
from support import SAMPLES

DEMO = SAMPLES / "escpos-php__demo.bin"  # 14 receipts, text and styles
LOGO = SAMPLES / "escpos-php__receipt-with-logo.bin"
EXPECTED_VERSION = f"printerd {printerd.__version__}"


def receipts_of(path) -> list[bytes]:
    parser = JobParser()
    return [e.raw for e in parser.feed(path.read_bytes()) + parser.close()
            if isinstance(e, ParsedReceipt)]


def output_of(*command: str) -> str:
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.parametrize("command", [
    [PRINTERD, "version"],
    [PRINTERD, "--version"],
    [sys.executable, "-m", "printerd", "version"],
    [TWISTD, "printerd", "--version"],
    [PRINTERD, "run", "--version"],
], ids=["printerd version", "printerd --version", "python -m printerd", "twistd printerd",
        "printerd run"])
def test_every_way_to_ask_prints_printerds_version(command):
    assert output_of(*command) == EXPECTED_VERSION


def test_the_installed_package_version_is_printerd_version():
    assert installed_version("printerd") == printerd.__version__


@pytest.mark.e2e
def test_printerd_run_serves_the_api_and_logs_which_version_runs(tmp_path):
    daemon = Daemon(tmp_path, "--database=var/printerd.sqlite3", cli=True)
    try:
        assert daemon.get("/api/health")[0] == 200
        assert f"{EXPECTED_VERSION} ready: " in daemon.log()
    finally:
        assert daemon.stop() in (0, -15)


def test_printerd_run_with_a_bad_option_says_so_in_one_line():
    result = subprocess.run([PRINTERD, "run", "--no-such-option"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "printerd: error: option --no-such-option not recognized"]


def test_render_txt_writes_the_first_receipt_to_stdout_as_the_api_renders_it(capsysbinary):
    assert main(["render", str(DEMO), "--format", "txt", "--width", "42"]) == 0
    captured = capsysbinary.readouterr()
    assert captured.out.decode() == render_text(receipts_of(DEMO)[0], 42)
    assert b"holds 14 receipts" in captured.err


def test_render_reads_a_job_for_a_printer_that_starts_in_two_byte_mode(tmp_path, capsysbinary):
    from clients import client_job

    job = tmp_path / "job.bin"
    job.write_bytes(client_job("node-escpos-gb18030"))
    assert main(["render", str(job), "--format", "txt", "--two-byte-at-start"]) == 0
    chinese = capsysbinary.readouterr().out.decode()
    assert "点心店 Dim Sum House" in chinese and "合计 Total 56.00" in chinese
    assert main(["render", str(job), "--format", "txt"]) == 0
    assert "点心店" not in capsysbinary.readouterr().out.decode()


def test_render_picks_a_receipt_and_writes_a_png_file(tmp_path):
    out = tmp_path / "receipt.png"
    assert main(["render", str(DEMO), "--format", "png", "--receipt", "3", "-o", str(out)]) == 0
    image = Image.open(io.BytesIO(out.read_bytes()))
    assert image.format == "PNG" and image.width == 512  # the default TM-T88V's paper
    assert main(["render", str(DEMO), "--format", "png", "--model", "TM-T20III", "-o",
                 str(out)]) == 0
    assert Image.open(io.BytesIO(out.read_bytes())).width == 576


def test_render_html_reads_standard_input_and_draws_the_logo(tmp_path):
    result = subprocess.run([PRINTERD, "render", "-", "--format", "html"],
                            input=LOGO.read_bytes(), capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(b"<!DOCTYPE html>") and b"data:image/png;base64," in \
        result.stdout


@pytest.mark.parametrize("arguments, message", [
    (["--format", "txt", "--width", "3"], "--width 3: txt is drawn at 32, 42, 48, 56, 64"),
    (["--format", "png", "--width", "48"], "png is drawn at 576, 512, 384"),
    (["--format", "gif"], "invalid choice: 'gif'"),
])
def test_render_refuses_a_bad_format_or_width_naming_what_is_allowed(arguments, message,
                                                                     capsys):
    with pytest.raises(SystemExit) as exit:
        main(["render", str(DEMO), *arguments])
    assert exit.value.code == 2
    assert message in capsys.readouterr().err


def test_render_of_a_missing_file_or_receipt_fails_with_one_line(tmp_path, capsys):
    assert main(["render", str(tmp_path / "missing.bin"), "--format", "txt"]) == 1
    assert main(["render", str(DEMO), "--format", "txt", "--receipt", "15"]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].startswith("printerd: error: cannot read ") and "No such file" in lines[0]
    assert lines[-1].endswith("holds 14 receipt(s); --receipt 15 is not one of them")


@pytest.mark.parametrize("http_listen, url", [
    ("tcp:8000", "http://127.0.0.1:8000"),
    ("tcp:8000:interface=0.0.0.0", "http://127.0.0.1:8000"),
    ("tcp:8001:interface=192.0.2.7:backlog=50", "http://192.0.2.7:8001"),
    ("tcp6:8002:interface=\\:\\:1", "http://[::1]:8002"),
])
def test_the_health_check_finds_the_http_listener_from_the_setting(http_listen, url):
    from printerd.cli import http_base_url

    assert http_base_url(http_listen) == url


@pytest.mark.e2e
def test_printerd_healthcheck_passes_against_the_daemon_and_fails_without_it(tmp_path):
    daemon = Daemon(tmp_path, "--database=var/printerd.sqlite3", cli=True)
    listen = {"PRINTERD_HTTP_LISTEN": f"tcp:{daemon.http_port}:interface=127.0.0.1"}
    try:
        result = subprocess.run([PRINTERD, "healthcheck"], env={**os.environ, **listen},
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0 and '/livez: 200 {"status":"alive"}' in result.stdout
        result = subprocess.run([PRINTERD, "healthcheck", "--ready"],
                                env={**os.environ, **listen}, capture_output=True, text=True,
                                timeout=60)
        assert result.returncode == 0 and '/readyz: 200 {"status":"ready"' in result.stdout
    finally:
        daemon.stop()
    result = subprocess.run([PRINTERD, "healthcheck"], env={**os.environ, **listen},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "Connection refused" in result.stdout


# Runs ``printerd run`` in this interpreter and, once it listens, writes the modules it imported.
IDLE_MODULES = """
import json, sys
from twisted.internet import reactor
from printerd.cli import main

def write_modules():
    with open(sys.argv[1], "w") as out:
        json.dump(sorted(sys.modules), out)
    reactor.stop()

reactor.callLater(1, write_modules)
main(["run", "--raw-listen=tcp:0:interface=127.0.0.1", "--http-listen=tcp:0:interface=127.0.0.1",
      "--database=" + sys.argv[2]])
"""


def test_an_idle_daemon_imports_only_what_it_uses(tmp_path):
    """
    What a daemon imports stays in its memory (issue 19: RSS idle <= 60 MB): the HTTP client of
    webhooks, CloudPRNT and Server Direct Print, the code pages' codecs and the command's
    argument parser load on first use, not at start.
    """
    listing = tmp_path / "modules.json"
    result = subprocess.run(
        [sys.executable, "-c", IDLE_MODULES, str(listing), str(tmp_path / "db.sqlite3")],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
        # The printerd these tests import (the source tree), not only the installed one.
        env={**os.environ, "PRINTERD_CONFIG": "",
             "PYTHONPATH": str(Path(printerd.__file__).parents[1])})
    assert result.returncode == 0, result.stderr
    modules = set(json.loads(listing.read_text()))
    assert "printerd.store.sqlite" in modules  # it did start
    assert not {"treq", "twisted.web.client", "argparse", "PIL"} & modules
    assert {m for m in modules if m.startswith("encodings.")} <= {
        "encodings.aliases", "encodings.charmap", "encodings.utf_8", "encodings.latin_1",
        "encodings.ascii", "encodings.idna"}
