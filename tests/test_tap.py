"""The wiring: options checked before anything starts, the service tree and its stop order."""

from __future__ import annotations

import pytest
from twisted.application.service import Service
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactorClock

from printerd.tap import Options, SequentialMultiService, lan_without_tokens, makeService


def parsed(*args: str) -> Options:
    options = Options()
    options.parseOptions(list(args))
    return options


def test_the_service_tree_stops_listeners_then_jobs_then_streams_then_the_store(tmp_path):
    options = parsed(f"--database={tmp_path}/p.sqlite3", "--printers",
                     '{"kitchen": "tcp:0", "bar": "tcp:0"}')
    root = makeService(options, reactor=MemoryReactorClock())
    assert [service.name for service in root.stopping_order()] == [
        "systemd-notify", "http_listen", "printers.kitchen", "printers.bar", "drain:kitchen",
        "drain:bar", "reactor-lag", "stream-hub", "forwarder", "retention", "store", "banner"]


def test_on_postgresql_a_tailer_stops_before_streams_and_deliveries_end():
    from support import postgres_database

    with postgres_database() as url:
        options = parsed(f"--database={url}", "--instance-name=till-a")
        root = makeService(options, reactor=MemoryReactorClock())
        names = [service.name for service in root.stopping_order()]
    assert names == [
        "systemd-notify", "http_listen", "raw_listen", "drain:default", "tailer",
        "reactor-lag", "stream-hub", "forwarder", "retention", "store", "banner"]


def test_a_database_that_does_not_answer_stops_start_up_with_one_line(tmp_path, capsys):
    options = parsed(f"--database=postgresql://printerd:hunter2@/printerd?host={tmp_path}")
    with pytest.raises(SystemExit) as exited:
        makeService(options, reactor=MemoryReactorClock())
    assert exited.value.code == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("printerd: error: database: cannot connect to "
                           "postgresql://printerd:***@/printerd")
    assert "hunter2" not in line


@pytest.mark.parametrize("version, fts5, says", [
    ((3, 31, 1), True, "Python's SQLite library is 3.31.1: printerd needs SQLite 3.35.0 or newer"),
    ((3, 40, 1), False, "Python's SQLite library 3.40.1 has no trigram search index"),
])
def test_a_sqlite_library_too_old_for_the_schema_stops_start_up_with_one_line(
        tmp_path, capsys, monkeypatch, version, fts5, says):
    import sqlite3

    from printerd.store import sqlite as sqlite_engine

    connect = sqlite3.connect

    class NoFTS5:  # a library built without FTS5 (the module is a compile-time option)
        def __init__(self, path: str) -> None:
            self._conn = connect(path)

        def execute(self, statement: str):
            if "fts5" in statement:
                raise sqlite3.OperationalError("no such module: fts5")
            return self._conn.execute(statement)

        def close(self) -> None:
            self._conn.close()

    monkeypatch.setattr(sqlite_engine.sqlite3, "sqlite_version_info", version)
    monkeypatch.setattr(sqlite_engine.sqlite3, "sqlite_version", ".".join(map(str, version)))
    if not fts5:
        monkeypatch.setattr(sqlite_engine.sqlite3, "connect", NoFTS5)
    with pytest.raises(SystemExit) as exited:
        makeService(parsed(f"--database={tmp_path}/p.sqlite3"), reactor=MemoryReactorClock())
    assert exited.value.code == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"printerd: error: database: {says}")
    assert not (tmp_path / "p.sqlite3").exists()  # nothing made of a schema it cannot hold


def test_a_child_missing_from_the_stop_order_is_an_error():
    root = SequentialMultiService(stop_order=("a",))
    for name in ("a", "b"):
        service = Service()
        service.setName(name)
        service.setServiceParent(root)
    with pytest.raises(ValueError, match="does not name exactly"):
        root.stopping_order()


class Stopping(Service):
    def __init__(self, name: str, log: list[str]) -> None:
        self.setName(name)
        self.log = log
        self.stopped: Deferred[None] = Deferred()

    def stopService(self) -> Deferred[None]:
        super().stopService()
        self.log.append(self.name)
        return self.stopped


def test_each_child_stops_once_the_one_before_it_has_finished():
    log: list[str] = []
    root = SequentialMultiService(stop_order=("http", "drain", "store"))
    children = {name: Stopping(name, log) for name in ("store", "drain", "http")}
    for child in children.values():
        child.setServiceParent(root)
    root.startService()
    done = root.stopService()
    assert log == ["http"]
    children["http"].stopped.callback(None)
    assert log == ["http", "drain"]
    children["drain"].stopped.callback(None)
    children["store"].stopped.callback(None)
    assert log == ["http", "drain", "store"] and done.called


@pytest.mark.parametrize("args, named", [
    (["--http-listen=carrier-pigeon:80"], "http_listen"),
    (["--printers", '{"bar": "tcp:notaport"}'], "printers.bar"),
    (["--api-tokens-file=/nonexistent/tokens"], "api_tokens_file"),
    (["--database=postgresql://u:pw@db/x?ssl_mode=on"], "--database"),
])
def test_bad_settings_are_refused_while_parsing_options_in_one_line(args, named, capsys):
    with pytest.raises(SystemExit) as exited:
        parsed(*args)
    assert exited.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"printerd: error: {named}: ")


def test_tokens_are_read_from_the_file_while_parsing_options(tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text("# operators\nfile-token\n\n")
    options = parsed(f"--api-tokens-file={tokens}", "--api-tokens=cli-token")
    assert options.tokens == ("cli-token", "file-token")


@pytest.mark.parametrize("address, tokens, insecure, refused", [
    (IPv4Address("TCP", "0.0.0.0", 8000), (), False, True),
    (IPv4Address("TCP", "192.168.1.5", 8000), (), False, True),
    (IPv6Address("TCP", "::", 8000), (), False, True),
    (IPv4Address("TCP", "127.0.0.1", 8000), (), False, False),
    (IPv4Address("TCP", "127.0.1.1", 8000), (), False, False),
    (IPv6Address("TCP", "::1", 8000), (), False, False),
    (IPv6Address("TCP", "::ffff:127.0.0.1", 8000), (), False, False),
    (UNIXAddress("/run/printerd.sock"), (), False, False),
    (IPv4Address("TCP", "0.0.0.0", 8000), ("token",), False, False),
    (IPv4Address("TCP", "0.0.0.0", 8000), (), True, False),
])
def test_the_http_listener_without_tokens_serves_only_on_loopback(address, tokens, insecure,
                                                                   refused):
    problem = lan_without_tokens(tokens, insecure, "tcp:8000")(address)
    assert (problem is not None) is refused
    if refused:
        assert "api_tokens" in problem and address.host in problem


def test_the_daemon_starts_without_the_drawing_libraries(tmp_path):
    """Pillow, segno and python-barcode (about 5 MB of RSS) load on the first rendering."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from twisted.internet.testing import MemoryReactorClock\n"
        "from printerd.tap import Options, makeService\n"
        "options = Options()\n"
        f"options.parseOptions(['--database={tmp_path}/db.sqlite3'])\n"
        "makeService(options, reactor=MemoryReactorClock())\n"
        "print(sorted(m for m in ('PIL', 'segno', 'barcode') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
