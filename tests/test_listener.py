"""Printer ports get a listen backlog that fits a burst unless their endpoint string sets one."""

from __future__ import annotations

import pytest

from printerd.listener import MIN_BACKLOG, default_backlog, with_backlog


@pytest.mark.parametrize("description, expected", [
    ("tcp:9100", "tcp:9100:backlog=4096"),
    ("tcp:9100:interface=192.168.1.10", "tcp:9100:interface=192.168.1.10:backlog=4096"),
    ("TCP6:9100:interface=\\:\\:1", "TCP6:9100:interface=\\:\\:1:backlog=4096"),
    ("unix:/run/printerd.sock", "unix:/run/printerd.sock:backlog=4096"),
    ("ssl:9100:privateKey=k.pem", "ssl:9100:privateKey=k.pem:backlog=4096"),
    ("tcp:9100:backlog=10", "tcp:9100:backlog=10"),  # the operator's choice stands
    ("systemd:domain=INET:index=0", "systemd:domain=INET:index=0"),  # no backlog to set
])
def test_a_backlog_is_added_where_the_endpoint_takes_one_and_gives_none(description, expected):
    assert with_backlog(description, 4096) == expected


def test_the_default_backlog_is_the_kernels_cap_when_larger(tmp_path):
    somaxconn = tmp_path / "somaxconn"
    somaxconn.write_text("4096\n")
    assert default_backlog(str(somaxconn)) == 4096
    somaxconn.write_text("128\n")
    assert default_backlog(str(somaxconn)) == MIN_BACKLOG
    assert default_backlog(str(tmp_path / "missing")) == MIN_BACKLOG

