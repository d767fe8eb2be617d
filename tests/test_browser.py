"""
The web page in a real browser: headless Chromium (Debian's package) driven by Playwright,
against a real daemon, with python-escpos printing as a POS would.

`.ci/run` installs Chromium, so CI always runs these; elsewhere they skip, saying why, when
there is no Chromium. PRINTERD_SCREENSHOT=<path> keeps a screenshot of the live page.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import sqlite3
import urllib.error
import urllib.request

import pytest
from escpos.printer import Network

from bench.daemon import Daemon

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    if os.environ.get("PRINTERD_REQUIRE_BROWSER") == "1":
        raise RuntimeError("PRINTERD_REQUIRE_BROWSER=1 but Chromium is not installed")
    pytest.skip("Chromium is not installed (apt-get install chromium); .ci/run installs it",
                allow_module_level=True)

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

# The flags keep Chromium from reaching for Google's services on a machine with no internet.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic"]
TIMEOUT_MS = 15_000
TOKEN = "browser-test-token-1234567890"


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                              headless=True)
        yield launched
        launched.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    yield opened
    context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


@pytest.fixture
def daemon(tmp_path):
    running = Daemon(tmp_path, "--database=var/printerd.sqlite3", "--shutdown-timeout=2")
    yield running
    running.stop()


def print_receipt(port: int, *lines: str) -> None:
    printer = Network("127.0.0.1", port=port, timeout=10)
    printer.set(align="center", bold=True)
    printer.text(lines[0] + "\n")
    printer.set(align="left", bold=False)
    for line in lines[1:]:
        printer.text(line + "\n")
    printer.qr("https://example.com/order/42", size=4, native=True)  # GS ( k, not an image
    printer.cut()
    printer.close()


def test_a_printed_receipt_appears_live_and_search_finds_it(daemon, page):
    print_receipt(daemon.raw_port, "Before the page opened", "Tea    1.80")
    page.goto(daemon.url("/"))
    page.locator("#connection.live").wait_for()
    feed = page.locator("#feed article")
    feed.first.wait_for()
    assert feed.count() == 1

    print_receipt(daemon.raw_port, "Table 7 espresso", "Espresso    2.20", "Total       2.20")
    newest = feed.first
    newest.locator("text=#2").wait_for()  # arrived over the stream, no reload
    assert feed.count() == 2
    # Drawn as on paper: the bold centred title and a QR code, inside the receipt's shadow root.
    paper = newest.locator(".paper .receipt")
    paper.locator("svg").first.wait_for()
    assert paper.locator(".l.center .b").inner_text() == "Table 7 espresso"
    assert paper.locator('[aria-label^="QR https://example.com/order/42"]').count() == 1

    if os.environ.get("PRINTERD_SCREENSHOT"):
        page.screenshot(path=os.environ["PRINTERD_SCREENSHOT"], full_page=False)

    page.click("text=Search")
    page.fill("#search-text", "espresso")
    page.click("#search-form button[type=submit]")
    results = page.locator("#search-results li")
    results.first.wait_for()
    assert results.count() == 1 and "Table 7 espresso" in results.first.inner_text()

    results.first.locator("a").first.click()  # the receipt's own page
    page.locator("#receipt-title", has_text="Receipt #2").wait_for()
    page.locator("#receipt-text", has_text="Espresso    2.20").wait_for()
    assert page.locator("#receipt-raw").get_attribute("href") == "/api/receipts/2/raw"
    # The default printer is a TM-T88V: 512 dots.
    expect(page.locator("#receipt-image")).to_have_js_property("naturalWidth", 512)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_live_feed_resumes_after_printerd_restarts(tmp_path, page):
    options = ("--database=var/printerd.sqlite3", "--shutdown-timeout=2",
               f"--http-listen=tcp:{free_port()}:interface=127.0.0.1")
    daemon = Daemon(tmp_path, *options)
    page.goto(daemon.url("/"))
    page.locator("#connection.live").wait_for()
    print_receipt(daemon.raw_port, "Before the restart", "Tea    1.80")
    page.locator("#feed article", has_text="#1").wait_for()
    daemon.stop()
    page.locator("#connection.reconnecting, #connection.offline").wait_for()
    daemon = Daemon(tmp_path, *options)  # same HTTP port, same database
    try:
        print_receipt(daemon.raw_port, "After the restart", "Water    1.00")
        # The browser reconnects by itself (Last-Event-ID: 1) and gets what it missed.
        page.locator("#feed article", has_text="#2").wait_for()
        page.locator("#connection.live").wait_for()
        assert page.locator("#feed article").count() == 2  # nothing shown twice
    finally:
        daemon.stop()


def test_paper_out_switch_is_what_python_escpos_sees(daemon, page):
    printer = Network("127.0.0.1", port=daemon.raw_port, timeout=10)
    assert printer.paper_status() == 2  # paper adequate
    page.goto(daemon.url("/#printers"))
    card = page.locator('[data-printer="default"]')
    card.locator('input[value="out"]').check()
    card.locator(".saved", has_text="saved").wait_for()
    assert printer.paper_status() == 0  # no paper
    card.locator('input[data-field="online"]').uncheck()
    page.locator(".saved", has_text="saved").wait_for()
    assert printer.is_online() is False
    printer.close()


def test_login_refuses_a_wrong_token_and_accepts_the_right_one(tmp_path, page):
    daemon = Daemon(tmp_path, "--database=var/printerd.sqlite3", "--shutdown-timeout=2",
                    f"--api-tokens={TOKEN}")
    try:
        page.goto(daemon.url("/"))
        page.locator("#login").wait_for()
        assert page.locator("#feed").is_hidden()
        page.fill("#token", "not-the-token")
        page.click("#login-form button")
        page.locator("#login-error", has_text="wrong token").wait_for()
        page.fill("#token", TOKEN)
        page.click("#login-form button")
        page.locator("#connection.live").wait_for()
        assert page.locator("#login").is_hidden()
        print_receipt(daemon.raw_port, "Logged in", "Cake    3.00")
        page.locator("#feed article").first.wait_for()
        # The token went in a POST body only: never in a URL the page visited or fetched.
        assert TOKEN not in page.url
        cookies = page.context.cookies()
        assert [c["name"] for c in cookies] == ["printerd_session"]
        assert cookies[0]["httpOnly"] and cookies[0]["sameSite"] == "Strict"
    finally:
        daemon.stop()


def test_health_view_shows_counters_and_retries_dead_letters(tmp_path, page):
    webhooks = '[{"name": "cloud", "url": "http://127.0.0.1:9/hook", "secret": "whsec_dGVzdA=="}]'
    options = ("--database=var/printerd.sqlite3", "--shutdown-timeout=2", f"--webhooks={webhooks}")
    first = Daemon(tmp_path, *options)
    print_receipt(first.raw_port, "For the webhook", "Soup    4.00")
    first.wait_for(lambda: first.get("/api/stats")[1]["receipts_total"] == 1)
    first.stop()
    # Dead letters take eight failures over a day: age this one there in the real database.
    with sqlite3.connect(tmp_path / "var" / "printerd.sqlite3") as db:
        db.execute("UPDATE deliveries SET state = 'dead', attempts = 8,"
                   " last_error = 'connection refused'")
    daemon = Daemon(tmp_path, *options)
    try:
        page.goto(daemon.url("/#health"))
        # Exactly this figure: others (epos_receipts_total) hold the same words.
        page.locator("#stats dt", has_text=re.compile(r"^receipts_total$")).wait_for()
        page.locator("#targets td", has_text="cloud").wait_for()
        row = page.locator("#dead tbody tr")
        row.locator("td", has_text="connection refused").wait_for()
        assert row.count() == 1
        row.locator("button", has_text="Retry").click()
        expect(row).to_have_count(0)
        assert daemon.get("/api/forwarder/dead")[1]["dead"] == []
    finally:
        daemon.stop()


def test_page_files_are_served_with_a_strict_policy(daemon):
    with urllib.request.urlopen(daemon.url("/"), timeout=10) as response:
        policy = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and response.read().startswith(b"<!DOCTYPE html>")
    for name, content_type in [("app.js", "text/javascript"), ("app.css", "text/css")]:
        with urllib.request.urlopen(daemon.url(f"/static/{name}"), timeout=10) as response:
            assert response.headers["Content-Type"].startswith(content_type)
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(daemon.url("/static/..%2Fapi.py"), timeout=10)
    assert missing.value.code == 404


def test_a_receipt_fits_a_phone_screen(daemon, browser):
    print_receipt(daemon.raw_port, "On a phone", "Espresso    2.20")
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    try:
        phone = context.new_page()
        phone.set_default_timeout(TIMEOUT_MS)
        phone.goto(daemon.url("/"))
        phone.locator("#feed .paper .receipt svg").wait_for()
        widths = phone.evaluate("""() => ({
            page: document.documentElement.scrollWidth,
            paper: document.querySelector('#feed .paper').scrollWidth,
            shown: document.querySelector('#feed .paper').clientWidth})""")
        assert widths["page"] <= 390  # no sideways scrolling
        assert widths["paper"] <= widths["shown"]  # the whole 48-column receipt is visible
    finally:
        context.close()


def test_search_pages_through_history_and_filters_by_date(daemon, page):
    for n in range(25):
        with socket.create_connection(("127.0.0.1", daemon.raw_port), timeout=10) as sock:
            sock.sendall(b"\x1b@Order %d lunch\n\x1dV\x00" % n)
    daemon.wait_for(lambda: daemon.get("/api/stats")[1]["receipts_total"] == 25)
    page.goto(daemon.url("/#search"))
    page.fill("#search-text", "lunch")
    page.click("#search-form button[type=submit]")
    results = page.locator("#search-results li")
    expect(results).to_have_count(20)
    assert "Order 24 lunch" in results.first.inner_text()  # newest first
    page.click("#search-more")
    expect(results).to_have_count(25)
    assert "Order 0 lunch" in results.last.inner_text()
    expect(page.locator("#search-more")).to_be_hidden()
    page.fill("#search-until", "2001-01-01T00:00")  # before any of them
    page.click("#search-form button[type=submit]")
    expect(page.locator("#search-status")).to_have_text("No receipt matches.")


def test_a_missing_receipt_shows_printerds_message(daemon, page):
    page.goto(daemon.url("/#receipt/99"))
    expect(page.locator("#page-error")).to_have_text("no receipt 99")


LONG_SENTENCE = ("Quizdeltagerne spiste jordbaer med flode, mens cirkusklovnen Wolther spillede paa "
                 "xylofon og alle lo.")


def test_on_paper_every_run_stays_in_its_line_and_long_lines_wrap_as_printed(daemon, page):
    """Issue 14.10: lines longer than the paper were cut, centred double-width text was pushed
    right and clipped, right-aligned double-width text vanished."""
    printer = Network("127.0.0.1", port=daemon.raw_port, timeout=10)
    printer.set(align="center", double_width=True, double_height=True)
    printer.text("ExampleMart Ltd.\n")
    printer.set(align="right", double_width=True, double_height=False)
    printer.text("Total  $ 14.25\n")
    for align in ("left", "center", "right"):
        printer.set(align=align, normal_textsize=True)
        printer.text(LONG_SENTENCE + "\n")
        printer.set(align=align, double_width=True)
        printer.text(LONG_SENTENCE + "\n")
    printer.set(align="center", font="b", normal_textsize=True)
    printer.text(LONG_SENTENCE + "\n")
    printer.cut()
    printer.close()
    page.goto(daemon.url("/"))
    page.locator("#feed .paper .receipt .l").first.wait_for()
    found = page.evaluate("""() => {
        const root = document.querySelector('#feed .paper').shadowRoot;
        const paper = root.querySelector('.receipt').getBoundingClientRect();
        const overflows = [], rows = [];
        for (const line of root.querySelectorAll('.l')) {
            const box = line.getBoundingClientRect();
            let text = '';
            for (const span of line.querySelectorAll('span')) {
                const run = span.getBoundingClientRect();
                text += span.textContent;
                if (run.width === 0 || run.left < box.left - 0.5 || run.right > box.right + 0.5
                        || run.top < box.top - 0.5 || run.bottom > box.bottom + 0.5
                        || run.right > paper.right + 0.5) {
                    overflows.push([span.textContent, run.left, run.right, box.left, box.right,
                                    run.top, run.bottom, box.top, box.bottom]);
                }
            }
            rows.push(text);
        }
        return {overflows, rows};
    }""")
    assert found["overflows"] == []
    rows = found["rows"]
    assert rows[0].strip() == "ExampleMart Ltd." and rows[1].strip() == "Total  $ 14.25"
    # Every sentence is all there, row after row, wrapped where the printer wraps: 42
    # characters a row (21 double-width, 56 in font B) on the default TM-T88V's 512 dots.
    assert "".join(rows[2:5]) == LONG_SENTENCE and [len(row) for row in rows[2:5]] == [42, 42, 17]
    assert "".join(rows[5:10]) == LONG_SENTENCE and [len(row) for row in rows[5:9]] == [21] * 4
    assert "".join(rows[-2:]) == LONG_SENTENCE and len(rows[-2]) == 56
    assert "".join(rows[2:]).count(LONG_SENTENCE) == 7


def test_a_printer_card_shows_its_tee_and_receipts_the_real_printer_missed(tmp_path, page):
    with socket.socket() as probe:  # a port nothing listens on: the real printer is off
        probe.bind(("127.0.0.1", 0))
        off = probe.getsockname()[1]
    daemon = Daemon(tmp_path, f"--tee=tcp:127.0.0.1:{off}", "--tee-timeout=1")
    try:
        with socket.create_connection(("127.0.0.1", daemon.raw_port), timeout=10) as sock:
            sock.sendall(b"\x1b@Order 5\n\x1dV\x00")
        daemon.wait_for(lambda: daemon.get("/api/stats")[1]["receipts_total"] == 1)
        page.goto(daemon.url("/#printers"))
        line = page.locator('[data-printer="default"] .tee')
        expect(line).to_contain_text(f"tee to tcp:127.0.0.1:{off}: unreachable")
        expect(line).to_contain_text("0 jobs relayed, 1 receipts not printed")
        expect(line).to_have_class(re.compile(r"\btee-down\b"))
    finally:
        daemon.stop()
