"""
Spotting connections that are plainly another protocol (port scanners, misdirected clients): an
HTTP, RTSP or SIP request line, a TLS or SSLv2 ClientHello, an SSH banner, a DNS query over TCP,
an ONC RPC call, an X11 connection setup, a redis command, an RDP connection request, an SMB
negotiation, telnet option negotiation, a bare "HELP" line. Only a whole protocol shape counts:
a job may start with text like "HELP ME", "OPTIONS:" or "GET READY", or with a status query.

``classify(prefix)`` sees the connection's first bytes; it answers NEED_MORE while they could
still become one of these shapes (never past MAX_PREFIX bytes). ``complete=True`` says no more
bytes will come: a connection that sent nothing but a bare "HELP" line is a probe.
"""

from __future__ import annotations

import re
from typing import Callable, Optional

NEED_MORE = "need-more"
MAX_PREFIX = 512  # a request line or message shape must be decided within this many bytes

_REQUEST_METHODS = (
    b"GET ", b"POST ", b"HEAD ", b"PUT ", b"DELETE ", b"OPTIONS ", b"CONNECT ", b"PATCH ",
    b"TRACE ", b"PRI ",
    # RTSP
    b"DESCRIBE ", b"SETUP ", b"PLAY ", b"PAUSE ", b"TEARDOWN ", b"ANNOUNCE ", b"RECORD ",
    b"GET_PARAMETER ", b"SET_PARAMETER ",
    # SIP
    b"INVITE ", b"REGISTER ", b"ACK ", b"BYE ", b"CANCEL ", b"SUBSCRIBE ", b"NOTIFY ",
    b"MESSAGE ", b"INFO ", b"PRACK ", b"UPDATE ", b"REFER ", b"PUBLISH ",
)
_REQUEST_LINE = re.compile(rb"^[A-Z_]+ \S+ (HTTP|RTSP|SIP)/\d")
_REQUEST_KINDS = {b"HTTP": "http", b"RTSP": "rtsp", b"SIP": "sip"}
_RPC_CALL = b"\x00\x00\x00\x00\x00\x00\x00\x02"
_HELP_PROBES = (b"HELP\r\n", b"HELP\n", b"HELP\n\n\x00")
_RESP_COMMAND = re.compile(rb"^\*[1-9][0-9]{0,2}\r\n\$[1-9][0-9]{0,3}\r\n[A-Za-z]+\r\n")
_RESP_START = re.compile(
    rb"^\*(?:[1-9][0-9]{0,2}(?:\r(?:\n(?:\$(?:[1-9][0-9]{0,3}(?:\r(?:\n[A-Za-z]*\r?)?)?)?)?)?)?)?$")

# A verdict: the kind, None (cannot be this shape) or NEED_MORE.
Verdict = Optional[str]


def _starts(prefix: bytes, signature: bytes) -> Optional[bool]:
    """True: prefix begins with signature; None: too short to tell; False: it does not."""
    if prefix[:len(signature)] != signature[:len(prefix)]:
        return False
    return True if len(prefix) >= len(signature) else None


def _request_line(prefix: bytes) -> Verdict:
    if not any(m.startswith(prefix[:len(m)]) for m in _REQUEST_METHODS):
        return None
    # Only a whole request line ("GET / HTTP/1.1") counts: a receipt may start "GET READY".
    line_end = prefix.find(b"\n")
    if line_end < 0:
        return NEED_MORE if len(prefix) < MAX_PREFIX else None
    match = _REQUEST_LINE.match(prefix[:line_end])
    return _REQUEST_KINDS[match.group(1)] if match else None


def _tls(prefix: bytes) -> Verdict:
    # TLS handshake record: 16 03 0x.
    if prefix[:1] != b"\x16":
        return None
    if len(prefix) < 3:
        return NEED_MORE
    return "tls" if prefix[1] == 0x03 and prefix[2] <= 0x04 else None


def _sslv2(prefix: bytes) -> Verdict:
    # SSLv2 record header (2 bytes, high bit set) + CLIENT-HELLO (1) + version 0002 or 0300-0304.
    if not prefix[0] & 0x80:
        return None
    if len(prefix) < 5:
        return NEED_MORE if len(prefix) < 3 or prefix[2] == 0x01 else None
    version = prefix[3:5]
    return "sslv2" if prefix[2] == 0x01 and (
        version == b"\x00\x02" or (version[0] == 0x03 and version[1] <= 0x04)) else None


def _onc_rpc(prefix: bytes) -> Verdict:
    # Record mark (last fragment bit, length < 64 KiB), xid, CALL (0), RPC version 2.
    if prefix[0] != 0x80 or prefix[1:2] not in (b"", b"\x00"):
        return None
    shape = _starts(prefix[8:], _RPC_CALL) if len(prefix) > 8 else None
    return "rpc" if shape else NEED_MORE if shape is None else None


def _dns_tcp(prefix: bytes) -> Verdict:
    # A 2-byte length, then one DNS query: header (QR 0, opcode 0-2, no answers) and questions.
    if prefix[0] != 0:
        return None
    if len(prefix) < 2:
        return NEED_MORE
    length = prefix[1]
    if not 12 <= length <= 255:
        return None
    if len(prefix) < 2 + length:
        return NEED_MORE if len(prefix) < 4 or _plausible_dns_header(prefix[2:]) else None
    message = prefix[2:2 + length]
    if len(prefix) != 2 + length or not _plausible_dns_header(message):
        return None
    questions = message[4] << 8 | message[5]
    at = 12
    for _ in range(questions):
        while at < length and message[at] != 0:
            at += 1 + message[at]
        at += 5  # the root label and QTYPE, QCLASS
    return "dns" if at == length else None


def _plausible_dns_header(message: bytes) -> bool:
    flags = message[2:4]
    if len(flags) and (flags[0] & 0x80 or (flags[0] >> 3) & 0x0F > 2):
        return False
    counts = message[4:12]
    return counts[:1] in (b"", b"\x00") and counts[2:8] == b"\x00" * len(counts[2:8])


def _x11(prefix: bytes) -> Verdict:
    # Connection setup: byte order ("l" little, "B" big), pad, protocol major version 11.
    for signature in (b"l\x00\x0b\x00\x00\x00", b"B\x00\x00\x0b\x00\x00"):
        shape = _starts(prefix, signature)
        if shape is not False:
            return "x11" if shape else NEED_MORE
    return None


def _rdp(prefix: bytes) -> Verdict:
    # TPKT (03 00, length) + X.224 Connection Request (length indicator, E0).
    shape = _starts(prefix, b"\x03\x00")
    if shape is not True:
        return NEED_MORE if shape is None else None
    if len(prefix) < 6:
        return NEED_MORE
    length = prefix[2] << 8 | prefix[3]
    return "rdp" if length >= 11 and prefix[4] == length - 5 and prefix[5] == 0xE0 else None


def _smb(prefix: bytes) -> Verdict:
    # NetBIOS session message (00, 3-byte length) + SMB1 or SMB2 header.
    if prefix[0] != 0:
        return None
    for magic in (b"\xffSMB", b"\xfeSMB"):
        shape = _starts(prefix[4:], magic) if len(prefix) > 4 else None
        if shape:
            return "smb"
        if shape is None:
            return NEED_MORE
    return None


def _telnet(prefix: bytes) -> Verdict:
    # Two option negotiations at least: IAC (FF) WILL/WONT/DO/DONT (FB-FE) option.
    for at in (0, 3):
        if len(prefix) <= at:
            return NEED_MORE
        if prefix[at] != 0xFF:
            return None
        if len(prefix) > at + 1 and not 0xFB <= prefix[at + 1] <= 0xFE:
            return None
    return "telnet" if len(prefix) >= 6 else NEED_MORE


def _ssh(prefix: bytes) -> Verdict:
    shape = _starts(prefix, b"SSH-")
    return "ssh" if shape else NEED_MORE if shape is None else None


def _redis(prefix: bytes) -> Verdict:
    # A RESP command array: *<n> CRLF $<length> CRLF <command word> CRLF.
    if _RESP_COMMAND.match(prefix):
        return "redis"
    return NEED_MORE if _RESP_START.match(prefix) else None


def _help(prefix: bytes) -> Verdict:
    # nmap's "HELP" probes, alone: only a connection that ends there is one (see complete).
    return NEED_MORE if any(p.startswith(prefix) for p in _HELP_PROBES) else None


_SHAPES: tuple[Callable[[bytes], Verdict], ...] = (
    _tls, _ssh, _request_line, _sslv2, _onc_rpc, _dns_tcp, _x11, _rdp, _smb, _telnet, _redis,
    _help,
)


# The bytes that may start one of the shapes above (each is asked about every one-byte
# prefix): a job that starts with any other byte, ESC and GS among them, is a job at once.
_FIRST_BYTES = frozenset(first for first in range(256)
                         if any(shape(bytes([first])) is not None for shape in _SHAPES))


def classify(prefix: bytes, complete: bool = False) -> Optional[str]:
    """The foreign protocol ``prefix`` starts, None if it is a print job, or NEED_MORE."""
    if not prefix:
        return None if complete else NEED_MORE
    if prefix[0] not in _FIRST_BYTES:
        return None
    if complete and prefix in _HELP_PROBES:
        return "help"
    undecided = False
    for shape in _SHAPES:
        verdict = shape(prefix)
        if verdict == NEED_MORE:
            undecided = True
        elif verdict is not None:
            return verdict
    return NEED_MORE if undecided and not complete and len(prefix) < MAX_PREFIX else None
