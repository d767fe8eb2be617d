"""
ePOS-Print against the real daemon: the epos-print-xml client (PyPI; requests underneath) posts
documents its builder made, over HTTP and over HTTPS (a certificate made in the test), on the
HTTP listener and on ``epos_listen``; receipts come back through the API, the renderings and the
raw endpoint; a printer whose cover is open refuses with Epson's code; bad XML, oversized bodies,
unknown devices and addresses outside ``raw_allow`` get their answers and are counted.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from src.epos.constants import Align, BarcodeType
from src.epos.document import EposDocument
from src.epos.elements import Barcode, Feed, Image, Text
from src.epos.printer import Printer

from bench.daemon import Daemon
from printerd.epos.document import parse_xml

pytestmark = pytest.mark.e2e

EPOS_NS = "http://www.epson-pos.com/schemas/2011/03/epos-print"
SERVICE = "/cgi-bin/epos/service.cgi"


def receipt_document() -> EposDocument:
    document = EposDocument()
    document.add_body(Text("CAFÉ DU PORT\n", align=Align.CENTER, bold=True, double_width=True))
    document.add_body(Text("Espresso        2.50 €\n", align=Align.LEFT, bold=False,
                           double_width=False))
    document.add_body(Feed(1))
    document.add_body(Barcode(BarcodeType.CODE128, "{BT42-0017", height=50))
    return document


def post(url: str, body: bytes, headers: dict | None = None,
         method: str = "POST") -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, data=body if method == "POST" else None,
                                     headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def response_attributes(body: bytes) -> dict:
    envelope = parse_xml(body)
    answer = envelope.children[-1].children[0]
    assert (answer.namespace, answer.name) == (EPOS_NS, "response")
    return answer.attributes


def envelope(inner: str) -> bytes:
    return (f'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
            f'<epos-print xmlns="{EPOS_NS}">{inner}</epos-print></s:Body></s:Envelope>').encode()


def metric(daemon: Daemon, name: str) -> float:
    with urllib.request.urlopen(daemon.url("/metrics"), timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
    return 0.0


def test_the_epos_client_prints_a_receipt_the_api_serves_like_any_other(daemon):
    printer = Printer(f"127.0.0.1:{daemon.http_port}", request_timeout=30)
    assert printer.printer_ready() is True  # an empty document: the status check
    response = printer.print(receipt_document())  # adds <cut/>
    assert (response.success, response.code, response.status) == (True, "", 251658262)

    receipts = daemon.wait_for(lambda: daemon.get("/api/receipts")[1]["receipts"])
    assert len(receipts) == 1  # the status check printed nothing
    receipt = receipts[0]
    assert receipt["text"] == "CAFÉ DU PORT\nEspresso        2.50 €"
    assert receipt["source"] == "epos-print"
    assert receipt["epos"] == {"document": 0, "part": 0, "devid": "local_printer"}
    assert receipt["printer"] == "default" and receipt["cut"] == "partial"
    assert [b["data"] for b in receipt["barcodes"]] == ["T42-0017"]
    assert receipt["line_styles"][0]["runs"] == [{"text": "CAFÉ DU PORT", "bold": True,
                                                  "width": 2}]
    with urllib.request.urlopen(daemon.url(f"/api/receipts/{receipt['id']}/raw")) as raw:
        xml = raw.read()
    assert xml.startswith(b"<s:Envelope") and b"<barcode" in xml  # the XML as posted
    with urllib.request.urlopen(daemon.url(f"/api/receipts/{receipt['id']}.txt")) as txt:
        text = txt.read().decode()
    assert "C A F É   D U   P O R T" in text and "Espresso        2.50 €" in text
    with urllib.request.urlopen(daemon.url(f"/api/receipts/{receipt['id']}.png")) as png:
        assert png.read().startswith(b"\x89PNG")
    assert metric(daemon, 'printerd_epos_documents_total{result="printed"}') == 2
    assert metric(daemon, "printerd_epos_receipts_total") == 1


def test_an_odoo_receipt_image_renders_dot_for_dot(daemon):
    # Odoo sends the whole receipt as one raster image (512 dots wide) and cuts.
    width, height = 512, 1500
    rows = bytearray(width // 8 * height)
    for y in range(100, 140):
        rows[y * 64:(y + 1) * 64] = b"\xff" * 64  # a black band
    document = EposDocument()
    document.add_body(Image(width=width, height=height, align=Align.CENTER,
                            text=base64.b64encode(bytes(rows)).decode()))
    response = Printer(f"127.0.0.1:{daemon.http_port}", request_timeout=30).print(document)
    assert response.success is True
    receipt = daemon.wait_for(lambda: daemon.get("/api/receipts")[1]["receipts"])[0]
    assert receipt["text"] == "" and sum(i["height"] for i in receipt["images"]["items"]) == height
    from io import BytesIO

    from PIL import Image as PillowImage
    with urllib.request.urlopen(daemon.url(f"/api/receipts/{receipt['id']}.png?width=512")) as r:
        drawn = PillowImage.open(BytesIO(r.read())).convert("L")
    assert drawn.size[0] == 512 and drawn.size[1] >= height
    band = [drawn.getpixel((x, y)) for y in range(drawn.size[1]) for x in (256,)]
    assert band.count(0) == 40  # exactly the band's 40 rows are black in the middle column


def test_a_printer_with_its_cover_open_refuses_and_keeps_nothing(daemon):
    request = urllib.request.Request(daemon.url("/api/printers/default/state"), method="PUT",
                                     data=json.dumps({"cover_open": True}).encode())
    urllib.request.urlopen(request, timeout=10).read()
    printer = Printer(f"127.0.0.1:{daemon.http_port}", request_timeout=30)
    response = printer.print(receipt_document())
    assert (response.success, response.code) == (False, "EPTR_COVER_OPEN")
    assert response.status & 0x08 and response.status & 0x20  # offline, cover open
    assert printer.printer_ready() is False
    request = urllib.request.Request(daemon.url("/api/printers/default/state"), method="PUT",
                                     data=json.dumps({"cover_open": False,
                                                      "paper": "out"}).encode())
    urllib.request.urlopen(request, timeout=10).read()
    assert printer.print(receipt_document()).code == "EPTR_REC_EMPTY"
    assert daemon.get("/api/receipts")[1]["receipts"] == []
    assert metric(daemon, 'printerd_epos_documents_total{result="EPTR_COVER_OPEN"}') == 2


@pytest.mark.parametrize("body, code", [
    (b"<epos-print><text>unclosed</epos-print>", "SchemaError"),
    (b'<!DOCTYPE x [<!ENTITY a "aaaa">]><epos-print/>', "SchemaError"),
    (envelope('<text align="middle">x</text>'), "SchemaError"),
    (b"", "SchemaError"),
])
def test_bad_documents_get_epsons_error_response_never_a_5xx(daemon, body, code):
    status, headers, answer = post(daemon.url(SERVICE + "?devid=local_printer"), body,
                                   {"Content-Type": "text/xml; charset=utf-8"})
    assert status == 200 and headers["Content-Type"].startswith("text/xml")
    assert response_attributes(answer)["success"] == "false"
    assert response_attributes(answer)["code"] == code
    assert metric(daemon, f'printerd_epos_documents_total{{result="{code}"}}') == 1


def test_an_unknown_device_id_is_device_not_found_and_a_named_printer_prints(tmp_path):
    daemon = Daemon(tmp_path, '--printers={"bar": "tcp:0:interface=127.0.0.1", '
                              '"kitchen": "tcp:0:interface=127.0.0.1"}')
    try:
        body = envelope("<text>Table 4: soup</text><cut/>")
        _, _, answer = post(daemon.url(SERVICE + "?devid=pantry"), body)
        assert response_attributes(answer)["code"] == "DeviceNotFound"
        _, _, answer = post(daemon.url(SERVICE + "?devid=kitchen&timeout=10000"), body)
        assert response_attributes(answer)["success"] == "true"
        receipts = daemon.wait_for(lambda: daemon.get("/api/receipts")[1]["receipts"])
        assert [(r["printer"], r["text"]) for r in receipts] == [("kitchen", "Table 4: soup")]
    finally:
        daemon.stop()


def test_the_cors_preflight_a_browser_sends_is_answered(daemon):
    status, headers, _ = post(daemon.url(SERVICE), b"", {
        "Origin": "https://pos.example.com", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,soapaction,if-modified-since",
        "Access-Control-Request-Private-Network": "true"}, method="OPTIONS")
    assert status == 204
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in headers["Access-Control-Allow-Methods"]
    assert headers["Access-Control-Allow-Headers"] == "content-type,soapaction,if-modified-since"
    assert headers["Access-Control-Allow-Private-Network"] == "true"
    _, headers, _ = post(daemon.url(SERVICE), envelope("<text>x</text>"),
                         {"Origin": "https://pos.example.com"})
    assert headers["Access-Control-Allow-Origin"] == "*"


def test_a_body_over_the_cap_is_refused_and_the_api_keeps_its_own_cap(tmp_path):
    daemon = Daemon(tmp_path, "--epos-max-body=100000")
    try:
        big = envelope("<text>" + "x" * 150_000 + "</text>")
        status, _, answer = post(daemon.url(SERVICE), big)
        assert status == 200 and response_attributes(answer)["code"] == "RequestEntityTooLarge"
        fits = envelope("<text>" + "y" * 90_000 + "</text><cut/>")
        assert response_attributes(post(daemon.url(SERVICE), fits)[2])["success"] == "true"
        status, _, _ = post(daemon.url("/api/session"), b"{" + b" " * 70_000 + b"}")
        assert status == 413
    finally:
        daemon.stop()


def test_addresses_outside_raw_allow_may_not_print(tmp_path):
    daemon = Daemon(tmp_path, "--raw-allow=10.0.0.0/8")
    try:
        status, headers, _ = post(daemon.url(SERVICE), envelope("<text>x</text><cut/>"))
        assert status == 403 and headers["Access-Control-Allow-Origin"] == "*"
        assert metric(daemon, "printerd_epos_forbidden_total") == 1
        assert daemon.get("/api/receipts")[1]["receipts"] == []
    finally:
        daemon.stop()


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost, and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "printerd test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_https_on_a_listener_of_its_own(tmp_path, monkeypatch):
    cert, key = make_certificate(tmp_path)
    daemon = Daemon(tmp_path, f"--epos-listen=ssl:0:interface=127.0.0.1:privateKey={key}"
                              f":certKey={cert}")
    try:
        port = daemon.ports["epos_listen"]
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))  # requests trusts our certificate
        printer = Printer(f"127.0.0.1:{port}", use_https=True, request_timeout=30)
        response = printer.print(receipt_document())
        assert (response.success, response.status) == (True, 251658262)
        receipts = daemon.wait_for(lambda: daemon.get("/api/receipts")[1]["receipts"])
        assert receipts[0]["text"].startswith("CAFÉ DU PORT")
        # Only ePOS-Print lives on that listener.
        import ssl
        context = ssl.create_default_context(cafile=str(cert))
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"https://127.0.0.1:{port}/api/receipts", context=context)
        assert refused.value.code == 404
    finally:
        daemon.stop()


def test_a_browser_page_of_another_origin_prints_and_reads_the_answer(tmp_path):
    """Chromium posts text/xml with SOAPAction cross-origin, as the ePOS SDK does: preflight."""
    import os
    import shutil

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        if os.environ.get("PRINTERD_REQUIRE_BROWSER") == "1":
            raise RuntimeError("PRINTERD_REQUIRE_BROWSER=1 but Chromium is not installed")
        pytest.skip("Chromium is not installed (apt-get install chromium); .ci/run installs it")
    from playwright.sync_api import sync_playwright

    daemon = Daemon(tmp_path, "--epos-listen=tcp:0:interface=127.0.0.1")
    try:
        target = f"http://127.0.0.1:{daemon.ports['epos_listen']}{SERVICE}?devid=local_printer"
        body = envelope("<text>from the browser&#10;</text><cut/>").decode()
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=chromium, headless=True,
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                      "--disable-component-update", "--no-first-run"])
            try:
                page = browser.new_page()
                # Origin http://localhost:<http port>: another host and port than the target.
                page.goto(f"http://localhost:{daemon.http_port}/no-such-page")
                status, text = page.evaluate(
                    """async ([url, body]) => {
                        const response = await fetch(url, {method: "POST", body, headers: {
                            "Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""',
                            "If-Modified-Since": "Thu, 01 Jan 1970 00:00:00 GMT"}});
                        return [response.status, await response.text()];
                    }""", [target, body])
            finally:
                browser.close()
        assert status == 200
        assert response_attributes(text.encode())["success"] == "true"
        receipts = daemon.wait_for(lambda: daemon.get("/api/receipts")[1]["receipts"])
        assert receipts[0]["text"] == "from the browser"
    finally:
        daemon.stop()


def test_a_star_printer_prints_epos_documents_and_renders_them(tmp_path):
    daemon = Daemon(tmp_path, '--printers={"bar": {"listen": "tcp:0:interface=127.0.0.1", '
                              '"emulation": "star"}}')
    try:
        _, _, answer = post(daemon.url(SERVICE + "?devid=bar"),
                            envelope('<text em="true">Star bar&#10;</text><cut/>'))
        assert response_attributes(answer)["success"] == "true"
        receipt = daemon.wait_for(lambda: daemon.get("/api/receipts")[1]["receipts"])[0]
        assert (receipt["printer"], receipt["text"]) == ("bar", "Star bar")
        with urllib.request.urlopen(daemon.url(f"/api/receipts/{receipt['id']}.txt")) as txt:
            assert "Star bar" in txt.read().decode()
    finally:
        daemon.stop()
