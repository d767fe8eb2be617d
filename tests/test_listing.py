"""The command listing (render/listing.py): a job element by element, as its printer reads it."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings, strategies as st

from printerd.escpos.profiles import DEFAULT_PROFILE
from printerd.escpos.status import PrinterState
from printerd.render.listing import (
    MAX_ELEMENTS, MAX_LIMIT, PARAMS_SHOWN, TEXT_SHOWN, list_commands,
)
from clients import client_job
from support import python_escpos_job


def names(listing) -> list[str]:
    return [element["name"] for element in listing.elements]


def test_a_python_escpos_job_is_listed_command_by_command_covering_every_byte():
    raw = python_escpos_job()
    listing = list_commands(raw)
    elements = listing.elements
    assert [e["offset"] for e in elements] == [0] + [
        e["offset"] + e["length"] for e in elements[:-1]]  # one after another, no gap
    assert elements[-1]["offset"] + elements[-1]["length"] == len(raw)
    assert names(listing)[:4] == ["ESC E", "ESC a", "ESC t", "text"]
    assert elements[0]["params"] == [1] and elements[1]["params"] == [1]  # bold on, centred
    texts = [e["text"] for e in elements if e["kind"] == "text"]
    assert texts == ["Table 7", "Espresso    2.20"]
    assert names(listing).count("LF") == 2 and names(listing)[-1] == "GS V"
    assert "GS ( k" in names(listing) and all(e["known"] for e in elements)
    summary = listing.to_json()["summary"]
    assert summary["complete"] and summary["bytes"] == len(raw) and summary["unknown"] == 0
    assert summary["text_runs"] == 2 and summary["elements"] == len(elements)


def test_unknown_commands_and_stray_control_bytes_are_flagged():
    listing = list_commands(b"\x1b@Hi\x07\x1b\x7f\x1dV\x00")
    flagged = {e["name"]: e["known"] for e in listing.elements}
    assert flagged == {"ESC @": True, "text": True, "0x07": False, "ESC 0x7f": False,
                       "GS V": True}
    assert listing.unknown == 2


def test_status_queries_carry_the_reply_for_the_printers_state():
    raw = b"\x10\x04\x01\x10\x04\x04\x1dr\x01\x1dI\x43\x1dV\x00"
    healthy = [(e["name"], e.get("reply")) for e in list_commands(raw).elements]
    # DLE EOT 1: fixed bits and the drawer pin high; DLE EOT 4: paper present; GS I C: model.
    assert healthy == [("DLE EOT", "16"), ("DLE EOT", "12"), ("GS r", "00"),
                       ("GS I", "5f 54 4d 2d 54 38 38 56 00"), ("GS V", None)]
    out = list_commands(raw, state=PrinterState(paper="out")).elements
    # Out of paper: offline, both sensors report no paper.
    assert [e.get("reply") for e in out[:3]] == ["1e", "7e", "0f"]
    assert list_commands(raw).status_queries == 4
    assert "reply" not in list_commands(raw).elements[-1]  # a cut is no query


def test_text_is_decoded_under_the_code_page_in_force():
    # ESC t 16 selects WPC1252: 0xE9 is é there, and Ú in the default page (PC437).
    listing = list_commands(b"Caf\xe9\n\x1bt\x10Caf\xe9\n\x1b@Caf\xe9\n")
    assert [e["text"] for e in listing.elements if e["kind"] == "text"] == [
        "Café"[:3] + "\u0398", "Café", "Café"[:3] + "\u0398"]


def test_a_command_cut_off_by_the_end_of_the_job_says_so():
    listing = list_commands(b"Hi\x1d(k\x10\x00abc")
    last = listing.elements[-1]
    assert last["name"] == "GS ( k" and last["length"] == 8 and last["cut_off"] == 16 - 3
    assert list_commands(b"Hi\x1d(").elements[-1]["name"] == "GS (incomplete)"


def test_huge_jobs_give_bounded_listings():
    # 9 MiB: three million bold switches, then a 1 MiB text run and a 4 MiB image.
    bold = b"\x1bE\x01" * 3_000_000
    listing = list_commands(bold, limit=50)
    assert len(listing.elements) == 50 and listing.more
    assert listing.walked == MAX_ELEMENTS and not listing.to_json()["summary"]["complete"]
    assert listing.walked_bytes == 3 * MAX_ELEMENTS
    text = list_commands(b"x" * (1 << 20)).elements[0]
    assert len(text["text"]) == TEXT_SHOWN and text["more_bytes"] == (1 << 20) - TEXT_SHOWN
    image = b"\x1dv0\x00" + bytes([0x00, 0x02, 0x00, 0x08]) + b"\xff" * (512 * 2048)
    element = list_commands(image + b"\x1dV\x00").elements[0]
    assert element["name"] == "GS v 0" and len(element["params"]) == PARAMS_SHOWN
    assert element["length"] == len(image)
    assert len(list_commands(bold, limit=10 * MAX_LIMIT).elements) == MAX_LIMIT


def test_pages_continue_where_the_last_ended():
    raw = python_escpos_job()
    whole = list_commands(raw).elements
    first, second = list_commands(raw, limit=5), list_commands(raw, start=5, limit=100)
    assert first.more and not second.more
    assert first.elements + second.elements == whole


def test_a_star_job_from_receipt_printer_encoder_is_listed_in_star_commands():
    raw = client_job("receipt-printer-encoder-star-line")
    listing = list_commands(raw, emulation="star")
    elements = listing.elements
    assert elements[-1]["offset"] + elements[-1]["length"] == len(raw) or listing.more
    assert elements[0]["name"] == "ESC @"
    assert {"ESC GS t", "ESC b", "ESC GS y D", "ESC GS x D", "ESC X", "ESC d"} <= set(names(listing))
    assert listing.unknown == 0
    assert any("ExampleMart" in e.get("text", "") for e in elements)
    # The same bytes read as ESC/POS are mostly unknown: the emulation matters.
    assert list_commands(raw).unknown > listing.unknown


def test_a_star_status_request_gets_the_star_reply():
    listing = list_commands(b"\x1b\x06\x01\x05\x04", emulation="star")
    assert [(e["name"], e.get("reply")) for e in listing.elements] == [
        ("ESC ACK", "23 06 00 00 00 00 00 00 00"), ("ENQ", "20"), ("EOT", "10")]
    # ESC/POS's DLE EOT n gets no answer from a Star printer, as on the raw port.
    listing = list_commands(b"\x10\x04\x01", emulation="star")
    assert [(e["name"], e.get("reply")) for e in listing.elements] == [
        ("DLE EOT (ESC/POS)", None)]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.sampled_from(["epson", "star"]))
def test_any_bytes_are_listed_without_error_and_every_byte_once(raw, emulation):
    listing = list_commands(raw, emulation=emulation)
    covered = 0
    for element in listing.elements:
        assert element["offset"] == covered and element["length"] >= 1
        covered += element["length"]
    assert covered == len(raw)


def test_text_is_listed_in_the_two_byte_mode_the_printer_starts_in():
    job = client_job("node-escpos-gb18030")
    chinese = replace(DEFAULT_PROFILE, two_byte_at_start=True)
    for emulation in ("epson", "star"):
        texts = [e["text"] for e in list_commands(job, emulation, profile=chinese).elements
                 if e["kind"] == "text"]
        assert texts[0] == "点心店 Dim Sum House", emulation
    epson = [e["text"] for e in list_commands(job).elements if e["kind"] == "text"]
    assert "点心店" not in epson[0]


def test_text_is_listed_in_the_kanji_code_system_a_japanese_job_selects():
    from clients import japanese_job

    for emulation, command in (("epson", "escpos"), ("star", "starmbcs")):
        job = japanese_job(command)
        texts = [e["text"] for e in list_commands(job, emulation, "shift_jis").elements
                 if e["kind"] == "text"]
        assert "領収書" in texts and "¥1,200" in texts, (emulation, texts)
