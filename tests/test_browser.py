"""
The web page in a real browser: headless Chromium (Debian's package) driven by Playwright,
against a real daemon, with python-escpos printing as a POS would.

`.ci/run` installs Chromium, so CI always runs these; elsewhere they skip, saying why, when
there is no Chromium. PRINTERD_SCREENSHOT=<path> keeps a screenshot of the live page.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from escpos.printer import Network

from bench.daemon import Daemon
from clients import require_node
from printerd.banner import lan_addresses
from support import free_port

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
# Assertions wait as long as actions do: on a loaded machine a stream event can take seconds.
expect.set_options(timeout=TIMEOUT_MS)
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
    daemon = dead_letter_daemon(tmp_path)
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
    off = free_port()  # a port nothing listens on: the real printer is off
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


# -- issue 18: where to print, a feed you can read, a replaced database, commands, the rest -----

AXE = Path(__file__).resolve().parent / "node" / "node_modules" / "axe-core" / "axe.min.js"


def raw_job(port: int, text: str, host: str = "127.0.0.1") -> None:
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(b"\x1b@" + text.encode() + b"\n\x1dV\x00")


def expected_addresses(port: int) -> list[str]:
    """What a POS must type to reach a listener on every interface of this machine."""
    return [f"{address}:{port}" for address in lan_addresses() or ["127.0.0.1"]]


def shows_addresses(daemon: Daemon, texts) -> list[str]:
    """Waits until ``texts()`` are this machine's addresses for the raw port (interfaces come
    and go: a container network appearing adds one) and returns them."""
    return daemon.wait_for(lambda: (lambda shown: shown == expected_addresses(daemon.raw_port)
                                    and shown)(texts()))


def test_an_empty_printerd_says_where_to_print_and_every_command_shown_prints(tmp_path, page):
    """Issue 18.1: the first screen shows each printer's LAN addresses (not 0.0.0.0), a command
    per common client that really prints, and a test receipt sent through the printer's port."""
    daemon = Daemon(tmp_path, "--database=var/printerd.sqlite3", "--shutdown-timeout=2",
                    "--raw-listen=tcp:0")  # every interface, as a real install listens
    try:
        page.goto(daemon.url("/"))
        where = page.locator("#where")
        expect(where).to_have_attribute("open", "")
        addresses = shows_addresses(daemon, where.locator(".addresses li").all_inner_texts)
        assert "0.0.0.0" not in page.locator("body").inner_text()
        if os.environ.get("PRINTERD_SCREENSHOT_FIRST"):
            page.screenshot(path=os.environ["PRINTERD_SCREENSHOT_FIRST"], full_page=False)
        commands = dict(zip(where.locator(".clients dt").all_inner_texts(),
                            where.locator(".clients pre").all_inner_texts(), strict=True))
        assert set(commands) == {"Shell (bash)", "python-escpos", "Node.js"}
        host, port = addresses[0].rsplit(":", 1)
        assert all(host in command and port in command for command in commands.values())
        # Each as pasted into a terminal (python3 being one with python-escpos installed).
        run = {"Shell (bash)": commands["Shell (bash)"],
               "python-escpos": commands["python-escpos"].replace("python3 ", f"{sys.executable} ", 1),
               "Node.js": commands["Node.js"].replace("node ", f"{require_node()} ", 1)}
        feed = page.locator("#feed .card")
        for printed, command in enumerate(run.values(), start=1):
            subprocess.run(["bash", "-c", command], check=True, timeout=30)
            expect(feed).to_have_count(printed)
        texts = [card["text"] for card in daemon.get("/api/receipts")[1]["receipts"]]
        assert texts == ["Hello from Node.js", "Hello from python-escpos",
                         "Hello from the POS\nTotal 12.50"]

        where.locator(".test-print").click()
        result = where.locator(".test-result")
        expect(result).to_have_text(re.compile(r"Printed: receipt #4"), timeout=TIMEOUT_MS)
        test_receipt = daemon.get("/api/receipts/4")[1]
        assert "Test receipt" in test_receipt["text"] and test_receipt["peer"].startswith("127.0.0.1:")
        expect(feed).to_have_count(4)

        page.click("text=Printers")
        page.locator("#printer-list .addresses li").first.wait_for()
        shows_addresses(daemon, page.locator("#printer-list .addresses li").all_inner_texts)
        page.click("text=Health")
        page.locator("#health-addresses code").first.wait_for()
        shows_addresses(daemon, page.locator("#health-addresses code").all_inner_texts)
    finally:
        daemon.stop()


def card_top(page, receipt_id: int) -> float:
    return page.locator(f'#feed .card[data-receipt-id="{receipt_id}"]').bounding_box()["y"]


def print_at(port: int, count: int, per_second: float, first: int) -> threading.Thread:
    def run() -> None:
        for n in range(count):
            raw_job(port, f"Order {first + n} arrives while you read")
            time.sleep(1 / per_second)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_the_card_being_read_stays_still_while_receipts_arrive(daemon, page):
    """Issue 18.2: at 3 receipts/s the card under the pointer does not move; new receipts wait
    in a "N new receipts" bar, which shows them on top when clicked; the pause switch holds."""
    for n in range(1, 9):
        raw_job(daemon.raw_port, f"Order {n} before reading")
    daemon.wait_for(lambda: daemon.get("/api/stats")[1]["receipts_total"] == 8)
    page.goto(daemon.url("/"))
    expect(page.locator("#feed .card .paper")).to_have_count(8)
    page.evaluate("window.scrollTo(0, 250)")
    reading = page.locator('#feed .card[data-receipt-id="5"]')
    reading.hover()
    before = card_top(page, 5)
    sender = print_at(daemon.raw_port, 12, 3.0, first=9)
    positions = []
    while sender.is_alive():
        positions.append(card_top(page, 5))
        time.sleep(0.2)
    sender.join()
    daemon.wait_for(lambda: daemon.get("/api/stats")[1]["receipts_total"] == 20)
    bar = page.locator("#new-receipts")
    expect(bar).to_have_text("12 new receipts")
    positions.append(card_top(page, 5))
    assert len(positions) >= 10 and max(abs(p - before) for p in positions) <= 1, positions
    assert page.locator("#feed .card").count() == 8
    bar.click()
    expect(page.locator("#feed .card")).to_have_count(20)
    assert page.locator("#feed .card").first.get_attribute("data-receipt-id") == "20"
    assert page.evaluate("window.scrollY") == 0
    expect(bar).to_be_hidden()

    # At the top with the pointer elsewhere, receipts come in at once; paused, they wait.
    page.mouse.move(5, 5)
    raw_job(daemon.raw_port, "Order 21 shown at once")
    expect(page.locator("#feed .card").first).to_have_attribute("data-receipt-id", "21")
    page.locator("#pause").check()
    raw_job(daemon.raw_port, "Order 22 while paused")
    expect(bar).to_have_text("1 new receipt")
    assert page.locator("#feed .card").first.get_attribute("data-receipt-id") == "21"
    page.locator("#pause").uncheck()
    expect(page.locator("#feed .card").first).to_have_attribute("data-receipt-id", "22")


def test_the_feed_filters_by_printer_with_unread_counts(tmp_path, page):
    """Issue 18.2: a printer filter (buttons) with the unread receipts of each printer."""
    printers = json.dumps({"kitchen": "tcp:0:interface=127.0.0.1",
                           "bar": "tcp:0:interface=127.0.0.1"})
    daemon = Daemon(tmp_path, "--database=var/printerd.sqlite3", f"--printers={printers}")
    try:
        kitchen, bar = daemon.ports["printers.kitchen"], daemon.ports["printers.bar"]
        raw_job(kitchen, "2x soup")
        raw_job(bar, "1x beer")
        page.goto(daemon.url("/"))
        cards = page.locator("#feed .card:visible")
        expect(cards).to_have_count(2)
        page.mouse.move(5, 5)
        page.click('#feed-filter button[data-printer="bar"]')
        expect(cards).to_have_count(1)
        expect(cards.first).to_contain_text("bar")
        raw_job(kitchen, "3x tea")
        raw_job(kitchen, "1x cake")
        kitchen_button = page.locator('#feed-filter button[data-printer="kitchen"]')
        expect(kitchen_button).to_have_text("kitchen 2")
        expect(kitchen_button).to_have_attribute("aria-label", "kitchen, 2 unread")
        expect(page.locator('#feed-filter button[data-printer=""]')).to_have_text("All 2")
        expect(cards).to_have_count(1)  # bar's receipt only
        raw_job(bar, "2x wine")
        expect(cards).to_have_count(2)
        expect(page.locator('#feed-filter button[data-printer="bar"]')).to_have_text("bar")
        kitchen_button.click()
        expect(cards).to_have_count(3)
        expect(kitchen_button).to_have_text("kitchen")
        page.click('#feed-filter button[data-printer=""]')
        expect(cards).to_have_count(5)
    finally:
        daemon.stop()


def test_a_narrow_window_shows_the_receipts_in_one_column_as_on_a_roll(daemon, browser):
    """Issue 18.2: below 60rem the receipts stand in one column, one under the other."""
    for n in range(4):
        raw_job(daemon.raw_port, f"Roll {n}")
    daemon.wait_for(lambda: daemon.get("/api/stats")[1]["receipts_total"] == 4)
    context = browser.new_context(viewport={"width": 900, "height": 900})
    try:
        narrow = context.new_page()
        narrow.goto(daemon.url("/"))
        expect(narrow.locator("#feed .card .paper")).to_have_count(4)
        boxes = [narrow.locator("#feed .card").nth(i).bounding_box() for i in range(4)]
        assert len({round(box["x"]) for box in boxes}) == 1
        assert all(a["y"] + a["height"] <= b["y"] + 0.5 for a, b in zip(boxes, boxes[1:], strict=False))
    finally:
        context.close()


def test_a_replaced_database_starts_the_feed_over(tmp_path, page):
    """Issue 18.3: a new database's ids start again at 1; the page starts over with it."""
    options = ("--database=var/printerd.sqlite3", "--shutdown-timeout=2",
               f"--http-listen=tcp:{free_port()}:interface=127.0.0.1")
    daemon = Daemon(tmp_path, *options)
    page.goto(daemon.url("/"))
    page.locator("#connection.live").wait_for()
    for n in range(3):
        raw_job(daemon.raw_port, f"Old database {n}")
    expect(page.locator("#feed .card")).to_have_count(3)
    daemon.stop()
    shutil.rmtree(tmp_path / "var")  # a new var/: a new, empty database
    daemon = Daemon(tmp_path, *options)
    try:
        raw_job(daemon.raw_port, "New database first receipt")
        card = page.locator("#feed .card")
        expect(card).to_have_count(1)
        expect(card.first).to_have_attribute("data-receipt-id", "1")
        expect(card.first).to_contain_text("New database first receipt")
        page.locator("#connection.live").wait_for()
        raw_job(daemon.raw_port, "New database second receipt")
        expect(card).to_have_count(2)
    finally:
        daemon.stop()


def test_a_receipts_commands_view_lists_what_the_printer_was_sent(daemon, page):
    """Issue 18.4: the Commands view of a receipt's page, unknown commands highlighted."""
    printer = Network("127.0.0.1", port=daemon.raw_port, timeout=10)
    printer.set(align="center", bold=True)
    printer.text("Commands please\n")
    printer._raw(b"\x1b\x7f")  # a command no Epson printer knows
    printer.text("Espresso    2.20\n")
    printer.cut()
    printer.close()
    daemon.wait_for(lambda: daemon.get("/api/stats")[1]["receipts_total"] == 1)
    page.goto(daemon.url("/#receipt/1"))
    page.click("#tab-commands")
    rows = page.locator("#commands tbody tr")
    rows.first.wait_for()
    listing = daemon.get("/api/receipts/1/commands")[1]
    expect(rows).to_have_count(len(listing["commands"]))
    unknown = page.locator("#commands tbody tr.unknown")
    expect(unknown).to_have_count(1)
    expect(unknown).to_contain_text("ESC 0x7f")
    expect(unknown).to_contain_text("unknown")
    assert unknown.evaluate("row => getComputedStyle(row.cells[0]).backgroundColor") \
        != rows.first.evaluate("row => getComputedStyle(row.cells[0]).backgroundColor")
    text_rows = page.locator("#commands tbody tr.text")
    expect(text_rows).to_have_count(2)
    expect(text_rows.first).to_contain_text("Commands please")
    expect(page.locator("#commands-summary")).to_contain_text("1 unknown")
    assert page.url.endswith("#receipt/1/commands")
    page.reload()  # the view is in the address: it comes back on reload
    expect(page.locator("#panel-commands")).to_be_visible()


def test_printers_and_health_refresh_by_themselves(daemon, page):
    """Issue 18.5: counters and states follow without a reload."""
    page.goto(daemon.url("/#printers"))
    counters = page.locator('#printer-list [data-printer="default"] .counters')
    expect(counters).to_contain_text("0 receipts")
    raw_job(daemon.raw_port, "Counted")
    expect(counters).to_contain_text("1 receipts")
    request = urllib.request.Request(daemon.url("/api/printers/default/state"), method="PUT",
                                     data=json.dumps({"cover_open": True}).encode())
    urllib.request.urlopen(request, timeout=10).close()  # changed by someone else
    # No receipt says so: the page's poll (every 5 s) finds it.
    expect(page.locator('#printer-list input[data-field="cover_open"]')).to_be_checked(
        timeout=TIMEOUT_MS)
    page.click("text=Health")
    total = page.locator("#stats dt:text-is('receipts_total') + dd")
    expect(total).to_have_text("1")
    raw_job(daemon.raw_port, "Counted again")
    expect(total).to_have_text("2")


def test_token_mode_has_log_out_and_no_offline_badge_at_the_login(tmp_path, page):
    """Issue 18.5: the login screen shows no red badge; Log out ends the session."""
    daemon = Daemon(tmp_path, "--database=var/printerd.sqlite3", "--shutdown-timeout=2",
                    f"--api-tokens={TOKEN}")
    try:
        page.goto(daemon.url("/"))
        page.locator("#login").wait_for()
        expect(page.locator("#connection")).to_be_hidden()
        expect(page.locator("#logout")).to_be_hidden()
        page.fill("#token", TOKEN)
        page.click("#login-form button")
        page.locator("#connection.live").wait_for()
        page.click("#logout")
        page.locator("#login").wait_for()
        expect(page.locator("#connection")).to_be_hidden()
        assert page.context.cookies() == []
        assert page.locator("#feed .card").count() == 0
        page.reload()
        page.locator("#login").wait_for()  # the session is over on the server too
    finally:
        daemon.stop()


def test_a_missing_receipt_shows_only_the_error(daemon, page):
    """Issue 18.5: the receipt shown before does not stay under the error."""
    print_receipt(daemon.raw_port, "Shown first", "Tea    1.80")
    page.goto(daemon.url("/#receipt/1"))
    page.locator("#receipt-text", has_text="Tea    1.80").wait_for()
    page.goto(daemon.url("/#receipt/99"))
    expect(page.locator("#page-error")).to_have_text("no receipt 99")
    expect(page.locator("#receipt-title")).to_have_text("Receipt #99")
    expect(page.locator("#view-receipt .paper")).to_be_hidden()
    expect(page.locator("#view-receipt", has_text="Tea")).to_have_count(0)


def dead_letter_daemon(tmp_path) -> Daemon:
    """A printerd with one webhook target and one dead letter for it."""
    webhooks = '[{"name": "cloud", "url": "http://127.0.0.1:9/hook", "secret": "whsec_dGVzdA=="}]'
    options = ("--database=var/printerd.sqlite3", "--shutdown-timeout=2", f"--webhooks={webhooks}")
    first = Daemon(tmp_path, *options)
    print_receipt(first.raw_port, "For the webhook", "Soup    4.00")
    first.wait_for(lambda: first.get("/api/stats")[1]["receipts_total"] == 1)
    first.stop()
    # Dead letters take eight failures over a day: age this one there in the real database.
    with sqlite3.connect(tmp_path / "var" / "printerd.sqlite3") as db:
        db.execute("UPDATE deliveries SET state = 'dead', attempts = 8,"
                   " last_error = 'connection refused by the receiving end of the webhook'")
    return Daemon(tmp_path, *options)


def test_the_health_page_fits_a_phone(tmp_path, browser):
    """Issue 18.5: at 390 px nothing runs off the screen, the Retry button included."""
    daemon = dead_letter_daemon(tmp_path)
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    try:
        phone = context.new_page()
        phone.goto(daemon.url("/#health"))
        retry = phone.locator("#dead button", has_text="Retry")
        retry.wait_for()
        assert phone.evaluate("document.documentElement.scrollWidth") <= 390
        box = retry.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 390
        retry.click()
        expect(phone.locator("#dead tbody tr")).to_have_count(0)
    finally:
        context.close()
        daemon.stop()


def axe_violations(page) -> list[dict]:
    """axe-core's serious and critical violations on the page as it is now."""
    page.evaluate(AXE.read_text())
    found = page.evaluate("""async () => (await axe.run(document, {resultTypes: ['violations']}))
        .violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                targets: v.nodes.map(n => n.target.join(' '))}))""")
    return [v for v in found if v["impact"] in ("serious", "critical")]


@pytest.mark.parametrize("viewport", [{"width": 1200, "height": 900}, {"width": 390, "height": 844}],
                         ids=["desktop", "phone"])
def test_no_view_has_serious_accessibility_violations(tmp_path, browser, viewport):
    """Acceptance of issue 18: axe-core over every view, at desktop and phone sizes."""
    require_node()  # axe-core comes with the npm test clients
    daemon = dead_letter_daemon(tmp_path)
    context = browser.new_context(viewport=viewport)
    found = {}
    try:
        view = context.new_page()
        view.goto(daemon.url("/"))
        view.locator("#feed .card .paper").first.wait_for()
        view.locator("#where summary").click()
        found["live"] = axe_violations(view)
        view.goto(daemon.url("/#search"))
        view.fill("#search-text", "soup")
        view.click("#search-form button[type=submit]")
        view.locator("#search-results li").first.wait_for()
        found["search"] = axe_violations(view)
        view.goto(daemon.url("/#receipt/1"))
        view.locator("#receipt-text", has_text="Soup").wait_for()
        view.locator("#commands tbody tr").first.wait_for(state="attached")
        found["receipt"] = axe_violations(view)
        view.click("#tab-commands")
        found["receipt commands"] = axe_violations(view)
        view.goto(daemon.url("/#printers"))
        view.locator("#printer-list .card .counters").first.wait_for()
        found["printers"] = axe_violations(view)
        view.goto(daemon.url("/#health"))
        view.locator("#dead button").first.wait_for()
        found["health"] = axe_violations(view)
    finally:
        context.close()
        daemon.stop()
    (tmp_path / "tokens").mkdir()
    tokens = Daemon(tmp_path / "tokens", "--database=var/printerd.sqlite3",
                    f"--api-tokens={TOKEN}")
    context = browser.new_context(viewport=viewport)
    try:
        login = context.new_page()
        login.goto(tokens.url("/"))
        login.locator("#login").wait_for()
        found["login"] = axe_violations(login)
    finally:
        context.close()
        tokens.stop()
    assert {name: v for name, v in found.items() if v} == {}


def test_the_receipt_text_panel_is_reachable_by_keyboard(daemon, page):
    """Issue 18.5: a scrolling Text panel takes the focus, so its arrows scroll it."""
    print_receipt(daemon.raw_port, "By keyboard", "x" * 42)
    page.goto(daemon.url("/#receipt/1"))
    page.locator("#receipt-text", has_text="By keyboard").wait_for()
    reached = []
    for _ in range(40):
        page.keyboard.press("Tab")
        reached.append(page.evaluate("document.activeElement.id"))
        if reached[-1] == "receipt-text":
            break
    assert reached[-1] == "receipt-text", reached
