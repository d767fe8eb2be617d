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


def test_the_backlog_length_is_read_from_the_listening_sockets_line(tmp_path):
    from twisted.internet.address import IPv4Address

    from printerd.rawport.backlog import backlog_length

    class Port:
        def getHost(self):
            return IPv4Address("TCP", "127.0.0.1", 9100)

    table = tmp_path / "tcp"
    header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt\n"
    table.write_text(
        header
        + "   0: 0100007F:238C 00000000:0000 0A 00000000:00000007 00:00000000 00000000\n"
        + "   1: 0100007F:1F40 00000000:0000 0A 00000000:00000002 00:00000000 00000000\n"
        # Established and TIME_WAIT sockets come after the listening ones: never read.
        + "   2: 0100007F:238C 0100007F:9C40 01 00000000:00000005 00:00000000 00000000\n"
        + "   3: 0100007F:238C 00000000:0000 0A 00000000:00000009 00:00000000 00000000\n")
    assert backlog_length(Port(), tcp=str(table)) == 7  # type: ignore[arg-type]
    assert backlog_length(Port(), tcp=str(tmp_path / "missing")) == 0  # type: ignore[arg-type]


def test_the_backlog_length_of_a_real_listening_socket():
    import socket

    from twisted.internet.address import IPv4Address

    from printerd.rawport.backlog import backlog_length

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    clients = [socket.create_connection(listener.getsockname()) for _ in range(3)]
    try:
        class Port:
            def getHost(self):
                return IPv4Address("TCP", "127.0.0.1", listener.getsockname()[1])

        assert backlog_length(Port()) == 3  # type: ignore[arg-type]
    finally:
        for client in clients:
            client.close()
        listener.close()
