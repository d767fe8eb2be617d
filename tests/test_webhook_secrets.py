"""Webhook secrets that interoperate: deliveries verified by the official Standard Webhooks library."""

from __future__ import annotations

import base64
import json
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from escpos.printer import Network
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from bench.daemon import PRINTERD, Daemon
from printerd.config import ConfigError, load_settings
from printerd.forwarder.signing import sign


class Receiver(ThreadingHTTPServer):
    """A webhook endpoint on 127.0.0.1 that keeps every POST's headers and body."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[dict[str, str], bytes]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(handler) -> None:  # noqa: N805  (the handler, not the server)
                body = handler.rfile.read(int(handler.headers["Content-Length"]))
                self.deliveries.append((dict(handler.headers.items()), body))
                handler.send_response(204)
                handler.end_headers()

            def log_message(handler, *args) -> None:  # noqa: N805
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


def new_secret() -> str:
    result = subprocess.run([PRINTERD, "webhook-secret"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.e2e
def test_the_official_library_verifies_real_deliveries_signed_with_a_generated_secret(
        tmp_path):
    secret = new_secret()
    receiver = Receiver()
    hooks = json.dumps([{"name": "cloud", "secret": secret,
                         "url": f"http://127.0.0.1:{receiver.server_address[1]}/hook"}])
    daemon = Daemon(tmp_path, "--database=var/printerd.sqlite3", f"--webhooks={hooks}")
    try:
        pos = Network("127.0.0.1", port=daemon.raw_port, timeout=10)
        pos.text("Table 4: 2 coffees\n")
        pos.cut()
        pos.close()
        deadline = time.monotonic() + 30
        while not receiver.deliveries and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        daemon.stop()
        receiver.shutdown()
    [(headers, body)] = receiver.deliveries
    payload = Webhook(secret).verify(body, headers)
    assert payload["type"] == "receipt.printed"
    assert payload["receipt"]["text"] == "Table 4: 2 coffees"
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace(b"coffees", b"teas"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)


def test_generated_secrets_are_whsec_base64_of_32_random_bytes():
    first, second = new_secret(), new_secret()
    assert first != second
    for secret in (first, second):
        assert secret.startswith("whsec_")
        assert len(base64.b64decode(secret[len("whsec_"):], validate=True)) == 32


def test_an_unpadded_secret_signs_as_the_official_library_reads_it():
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS"  # 35 base64 characters, no padding
    body = b'{"type": "receipt.printed"}'
    now = int(time.time())
    headers = {"webhook-id": "msg_cloud_1", "webhook-timestamp": str(now),
               "webhook-signature": sign(secret, "msg_cloud_1", now, body)}
    assert Webhook(secret).verify(body, headers) == {"type": "receipt.printed"}


@pytest.mark.parametrize("secret, problem", [
    ("correct horse battery staple", "secret must be whsec_ followed by base64"),
    ("whsec_not base64!", "secret: what follows whsec_ is not base64"),
    ("whsec_", "secret: the key after whsec_ is empty"),
])
def test_a_secret_the_official_libraries_cannot_read_is_a_config_error_naming_the_webhook(
        secret, problem):
    hooks = json.dumps([{"name": "cloud", "url": "https://r.test/hook", "secret": secret}])
    with pytest.raises(ConfigError) as error:
        load_settings({"webhooks": hooks}, {})
    message = str(error.value)
    assert message.startswith("--webhooks: ") and f"webhook 'cloud': {problem}" in message
    assert "printerd webhook-secret" in message
    assert secret not in message.replace(problem, "")  # the secret is not echoed


@pytest.mark.e2e
def test_the_daemon_refuses_a_plain_string_secret_in_one_line(tmp_path):
    hooks = json.dumps([{"name": "cloud", "url": "https://r.test/hook", "secret": "s3cret"}])
    result = subprocess.run([PRINTERD, "run", f"--webhooks={hooks}"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("printerd: error: --webhooks: ") and "webhook 'cloud'" in line
    assert "s3cret" not in line
