"""The README's receiver example verifies what the forwarder signs."""

import json
import re
import time
from pathlib import Path

import pytest

from printerd.forwarder.signing import sign

README = Path(__file__).resolve().parents[1] / "README.md"


def receiver_example():
    block = re.search(r"```python\n# receiver example\n(.*?)```", README.read_text(), re.S)
    assert block, "the README lost its receiver example"
    namespace: dict = {}
    exec(block.group(1), namespace)  # noqa: S102 - running the documented code is the point
    return namespace["verify_printerd_webhook"]


def test_readme_receiver_accepts_a_signed_delivery_and_rejects_tampering():
    verify = receiver_example()
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = json.dumps({"type": "receipt.printed", "receipt": {"id": 5, "text": "x"}}).encode()
    now = int(time.time())
    headers = {"webhook-id": "msg_cloud_5", "webhook-timestamp": str(now),
               "webhook-signature": sign(secret, "msg_cloud_5", now, body)}
    assert verify(secret, headers, body)["id"] == 5
    with pytest.raises(ValueError, match="bad signature"):
        verify(secret, headers, body.replace(b'"x"', b'"y"'))
    with pytest.raises(ValueError, match="stale"):
        verify(secret, {**headers, "webhook-timestamp": str(now - 3600)}, body)


def test_every_setting_is_documented_in_the_readme():
    from printerd.config import env_name, setting_fields

    text = README.read_text()
    missing = [f.name for f in setting_fields() if f.name not in text]
    assert missing == []
    assert env_name("max_connections") in text
