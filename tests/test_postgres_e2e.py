"""
End to end on PostgreSQL: two real daemons (twistd subprocesses) on one database, real sockets,
real POS bytes.  Printed on A, streamed on B; an instance killed mid-burst; the database
stopped and started again (a throwaway cluster of the test's own, ``.ci/postgres-cluster``).
"""

from __future__ import annotations

import http.client
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bench.daemon import Daemon, wait_for as bench_wait_for
from support import postgres_database, postgres_url_or_skip, send_job

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[1]


def job(text: str) -> bytes:
    return b"\x1b@" + text.encode() + b"\nTotal 9.99\n\x1dV\x00"


class Stream:
    """A /api/stream subscriber on a thread of its own: the ids of the events it got, in order."""

    def __init__(self, daemon: Daemon, last_event_id: int | None = None) -> None:
        self.ids: list[int] = []
        self.texts: list[str] = []
        self.closed = False
        self._conn = http.client.HTTPConnection("127.0.0.1", daemon.http_port, timeout=60)
        headers = {} if last_event_id is None else {"Last-Event-ID": str(last_event_id)}
        self._conn.request("GET", "/api/stream", headers=headers)
        self._response = self._conn.getresponse()
        assert self._response.status == 200
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for line in self._response:
                if line.startswith(b"id: "):
                    self.ids.append(int(line[4:]))
                elif line.startswith(b"data: "):
                    self.texts.append(line[6:].decode())
        except (OSError, http.client.HTTPException, AttributeError):
            pass  # closed (AttributeError: http.client's own race when closed meanwhile)
        self.closed = True

    def close(self) -> None:
        self._conn.close()


def wait_for(condition, timeout: float = 30.0):
    return bench_wait_for(condition, timeout)


def all_receipts(daemon: Daemon) -> list[dict]:
    code, body = daemon.get("/api/receipts?limit=500")
    assert code == 200
    return body["receipts"]


@pytest.fixture
def database():
    with postgres_database() as url:
        yield url


@pytest.fixture
def two(tmp_path, database):
    """Instances A and B on one PostgreSQL database."""
    made = []
    for name in ("a", "b"):
        workdir = tmp_path / name
        workdir.mkdir()
        made.append(Daemon(workdir, f"--database={database}", f"--instance-name={name}",
                           "--api-rate=0", "--shutdown-timeout=2"))
    yield made
    for daemon in made:
        daemon.stop()


def test_printed_on_a_streamed_on_b_in_order_without_gap_or_repeat(two):
    a, b = two
    on_b, on_a = Stream(b), Stream(a)
    jobs = [(a if i % 2 else b, job(f"Table {i}")) for i in range(120)]
    with ThreadPoolExecutor(max_workers=12) as pool:
        list(pool.map(lambda pair: send_job(pair[0].raw_port, pair[1]), jobs))
    wait_for(lambda: len(on_b.ids) >= 120 and len(on_a.ids) >= 120)
    time.sleep(0.5)  # anything extra (a repeat) would arrive now
    assert on_b.ids == list(range(1, 121))
    assert on_a.ids == on_b.ids
    listed_a, listed_b = all_receipts(a), all_receipts(b)
    assert listed_a == listed_b and len(listed_a) == 120
    assert {r["text"] for r in listed_a} == {f"Table {i}\nTotal 9.99" for i in range(120)}
    # Job numbers stay unique across the two instances.
    assert len({r["job"] for r in listed_a}) == 120
    code, stats = b.get("/api/stats")
    assert stats["instance"] == {"instance_name": "b", "engine": "postgresql", "site": ""}
    assert stats["threads"] == 4
    # Each instance's tailer heard the other's commits and announced its receipts (60 each).
    for here, there in ((a, b), (b, a)):
        mine, theirs = here.get("/api/stats")[1], there.get("/api/stats")[1]
        assert mine["tailer_receipts_from_others_total"] == theirs["receipts_committed_total"] \
            == 60
        assert mine["tailer_notifications_total"] >= 1
        assert mine["tailer_catch_up_reads_total"] >= 1
    assert b.get("/api/health")[0] == 200
    on_a.close()
    on_b.close()


def test_a_killed_mid_burst_into_b_loses_nothing_and_resumes_from_last_event_id(two, database):
    a, b = two
    on_a, on_b = Stream(a), Stream(b)
    jobs = [job(f"Burst {i}") for i in range(600)]

    def burst(part: list[bytes]) -> None:
        with ThreadPoolExecutor(max_workers=10) as pool:
            list(pool.map(lambda data: send_job(b.raw_port, data), part))

    # The first half of the burst is going into B when A is killed; the second half follows.
    first_half = threading.Thread(target=burst, args=(jobs[:300],))
    first_half.start()
    wait_for(lambda: len(on_a.ids) >= 30)
    a.process.send_signal(signal.SIGKILL)
    assert a.process.wait(10) == -signal.SIGKILL
    first_half.join()
    burst(jobs[300:])
    wait_for(lambda: len(on_b.ids) >= 600, timeout=60)
    assert on_b.ids == list(range(1, 601))  # B kept streaming, nothing lost
    seen_by_a = list(on_a.ids)
    assert seen_by_a == list(range(1, len(seen_by_a) + 1)) and len(seen_by_a) <= 300

    restarted = Daemon(a.workdir, f"--database={database}", "--instance-name=a",
                       "--api-rate=0", "--shutdown-timeout=2")
    two[0] = restarted
    resumed = Stream(restarted, last_event_id=seen_by_a[-1])
    wait_for(lambda: len(resumed.ids) >= 600 - len(seen_by_a))
    time.sleep(0.5)
    assert resumed.ids == list(range(seen_by_a[-1] + 1, 601))  # exactly what it missed
    send_job(b.raw_port, job("after the restart"))
    wait_for(lambda: resumed.ids[-1:] == [601])
    for stream in (on_a, on_b, resumed):
        stream.close()


# -- the database stops and starts again ----------------------------------------------------

class Cluster:
    """A throwaway PostgreSQL cluster of this test's own (the shared one must keep running)."""

    def __init__(self) -> None:
        postgres_url_or_skip()
        self.url = subprocess.run([str(ROOT / ".ci" / "postgres-cluster")], check=True,
                                  capture_output=True, text=True).stdout.strip()
        self.folder = self.url.rsplit("host=", 1)[1]
        self.bindir = subprocess.run(
            "ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1", shell=True,
            capture_output=True, text=True, check=True).stdout.strip()

    def _pg_ctl(self, *arguments: str) -> None:
        command = " ".join([f"'{self.bindir}/pg_ctl'", "-D", f"'{self.folder}/data'",
                            *arguments])
        subprocess.run(["su", "postgres", "-s", "/bin/sh", "-c", command], check=True,
                       capture_output=True, timeout=60)

    def stop(self) -> None:
        self._pg_ctl("-m", "fast", "-w", "stop")

    def start(self) -> None:
        self._pg_ctl("-l", f"'{self.folder}/server.log'", "-w", "-o",
                     f"\"-k {self.folder} -c listen_addresses=''\"", "start")

    def remove(self) -> None:
        subprocess.run([str(ROOT / ".ci" / "postgres-cluster"), "stop", self.folder],
                       check=False, capture_output=True)


@pytest.fixture
def cluster():
    made = Cluster()
    yield made
    made.remove()


def test_postgresql_stopped_health_503_port_paused_then_everything_resumes(tmp_path, cluster):
    daemon = Daemon(tmp_path, f"--database={cluster.url}", "--api-rate=0",
                    "--shutdown-timeout=2")
    try:
        stream = Stream(daemon)
        send_job(daemon.raw_port, job("before"))
        wait_for(lambda: stream.ids == [1])
        cluster.stop()
        code, body = wait_for(lambda: (lambda r: r if r[0] == 503 else None)(
            daemon.get("/api/health")))
        assert body["checks"]["database"].startswith("does not answer")
        # A job received now is kept in memory; its failed commit pauses the raw port.
        send_job(daemon.raw_port, job("during"))
        wait_for(lambda: "raw port paused" in daemon.log())
        code, stats = daemon.get("/api/stats")
        assert stats["receipts_pending"] == 1
        assert daemon.get("/readyz")[0] == 503
        cluster.start()
        # The store retries its commit; the tailer listens again; the stream gets it.
        wait_for(lambda: stream.ids == [1, 2])
        wait_for(lambda: daemon.get("/api/health")[0] == 200)
        send_job(daemon.raw_port, job("after"))
        wait_for(lambda: stream.ids == [1, 2, 3])
        texts = [r["text"] for r in reversed(all_receipts(daemon))]
        assert texts == ["before\nTotal 9.99", "during\nTotal 9.99", "after\nTotal 9.99"]
        stream.close()
    finally:
        daemon.stop()


# -- webhooks from two instances, and a site forwarding to a central printerd -----------------

WEBHOOK_SECRET = "whsec_ZTJlLXR3by1pbnN0YW5jZXMta2V5"


class Receiver:
    """A webhook receiver on a socket of its own: counts POSTs per webhook-id, answers 200."""

    def __init__(self, delay: float = 0.02) -> None:
        import http.server

        self.posts: dict[str, int] = {}
        lock = threading.Lock()
        posts = self.posts

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(delay)  # a cloud function's usual time
                with lock:
                    posts[self.headers["webhook-id"]] = posts.get(self.headers["webhook-id"], 0) + 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def test_a_webhook_configured_on_both_instances_gets_each_receipt_once(tmp_path, database):
    import json

    receiver = Receiver()
    webhooks = json.dumps([{"name": "cloud", "url": receiver.url, "secret": WEBHOOK_SECRET}])
    daemons = []
    try:
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            daemons.append(Daemon(tmp_path / name, f"--database={database}",
                                  f"--instance-name={name}", f"--webhooks={webhooks}",
                                  "--api-rate=0", "--shutdown-timeout=2"))
        jobs = [(daemons[i % 2], job(f"Hook {i}")) for i in range(150)]
        with ThreadPoolExecutor(max_workers=10) as pool:
            list(pool.map(lambda pair: send_job(pair[0].raw_port, pair[1]), jobs))
        wait_for(lambda: len(receiver.posts) >= 150, timeout=60)
        time.sleep(1.5)  # both forwarders poll every second: a second POST would come now
        assert set(receiver.posts) == {f"msg_cloud_{n}" for n in range(1, 151)}
        assert {n for n in receiver.posts.values()} == {1}
        # Both instances took part: each recorded deliveries of its own claims.
        delivered = [d.get("/api/stats")[1]["webhook_attempts_total"]["delivered"]
                     for d in daemons]
        assert sum(delivered) == 150
    finally:
        for daemon in daemons:
            daemon.stop()
        receiver.close()


def test_a_site_forwards_to_a_central_printerd_that_stores_streams_and_renders_it(
        tmp_path, database):
    """The README's chain: a site on SQLite, its outbox posting to a central on PostgreSQL."""
    import base64
    import json
    import urllib.request

    token = "site-paris-3-token"
    (tmp_path / "central").mkdir()
    (tmp_path / "site").mkdir()
    central = Daemon(tmp_path / "central", f"--database={database}", f"--api-tokens={token}",
                     f"--ingest-secrets={WEBHOOK_SECRET}", "--api-rate=0")
    webhooks = json.dumps([{"name": "central", "secret": WEBHOOK_SECRET, "token": token,
                            "include_raw": True,
                            "url": f"http://127.0.0.1:{central.http_port}/api/ingest"}])
    site = Daemon(tmp_path / "site", "--database=site.sqlite3", "--site=paris-3",
                  f"--webhooks={webhooks}", "--api-rate=0")
    try:
        def central_get(path: str) -> bytes:
            request = urllib.request.Request(central.url(path),
                                             headers={"Authorization": f"Bearer {token}"})
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.read()

        # A logo receipt: its raw bytes (base64 in the delivery) are over the API's 64 KiB.
        logo = b"\x1dv0\x00\x48\x00\x00\x04" + bytes(range(256)) * (0x48 * 4)
        send_job(site.raw_port, b"\x1b@\x1ba\x01" + logo + b"Caf\x82 Paris\nTotal 4.20\n\x1dV\x00")
        listed = wait_for(lambda: json.loads(central_get("/api/receipts"))["receipts"],
                          timeout=30)
        (got,) = listed
        (mine,) = site.get("/api/receipts")[1]["receipts"]
        assert got["site"] == "paris-3" and got["site_receipt_id"] == mine["id"]
        assert (got["printer"], got["text"], got["sha256"]) == (
            mine["printer"], mine["text"], mine["sha256"])
        assert got["bytes"] > 64 * 1024
        assert central_get(f"/api/receipts/{got['id']}.txt") == urllib.request.urlopen(
            site.url(f"/api/receipts/{mine['id']}.txt"), timeout=10).read()
        raw = central_get(f"/api/receipts/{got['id']}/raw")
        assert base64.b64encode(raw) and len(raw) == got["bytes"]
        assert site.get("/api/forwarder")[1]["targets"][0]["delivered"] == 1
    finally:
        site.stop()
        central.stop()
