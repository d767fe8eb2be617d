"""The emulated printers: what they report and the state their status replies tell."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Sequence

from twisted.web.iweb import IRequest

from printerd.banner import lan_addresses, reachable_at
from printerd.escpos.status import PAPER_NEAR_END, PAPER_OK, PAPER_OUT
from printerd.http.params import ApiError, parse_json_body
from printerd.http.responses import json_app, json_body
from printerd.rawport.factory import RawPrinter

MAX_STATE_BODY = 4096
STATE_FIELDS = {"online": bool, "cover_open": bool, "drawer_open": bool, "paper": str}


def printer_addresses(printer: RawPrinter, lan: list[str]) -> list[str]:
    """Where a POS prints to this printer: host:port as it must be typed (one per LAN address
    for a listener on every interface), as the start-up banner says; empty while not listening."""
    listener = printer.listener
    if listener is None or listener.port is None:
        return []
    return reachable_at(listener.bound(), lan)


def printer_json(printer: RawPrinter, lan: list[str]) -> dict[str, Any]:
    factory = printer.factory
    identity = factory.job_settings.identity
    counters = factory.counters
    listener = printer.listener.description if printer.listener else None
    return {"name": factory.printer, "listener": listener,
            "addresses": printer_addresses(printer, lan),
            "emulation": factory.job_settings.emulation.name,
            "model": {"maker": identity.maker, "model": identity.model,
                      "serial": identity.serial},
            "state": factory.state.to_json(),
            "counters": {"jobs": counters.jobs_total, "receipts": counters.receipts_total,
                         "bytes": counters.bytes_total,
                         "status_replies": counters.status_replies_total,
                         "unknown_commands": counters.unknown_commands_total},
            "tee": factory.tee.to_json() if factory.tee is not None else None,
            "cloudprnt": printer.cloudprnt.to_json() if printer.cloudprnt is not None else None,
            "mdns": printer.mdns.to_json() if printer.mdns is not None else None}


class PrinterRoutes:
    """``/api/printers`` and each printer's state."""

    app = json_app()

    def __init__(self, printers: Sequence[RawPrinter],
                 lan: Callable[[], list[str]] = lan_addresses) -> None:
        self.by_name = {p.factory.printer: p for p in printers}
        self.lan = lan  # this machine's LAN addresses, asked each time (they may change)

    @app.route("/api/printers", methods=["GET"])
    def list_printers(self, request: IRequest) -> bytes:
        lan = self.lan()
        return json_body(request, {"printers": [printer_json(p, lan)
                                                for p in self.by_name.values()]})

    @app.route("/api/printers/<name>/state", methods=["PUT"])
    def set_state(self, request: IRequest, name: str) -> bytes:
        """Flip the printer offline, out of paper, cover open...: status replies follow."""
        printer = self.by_name.get(name)
        if printer is None:
            raise ApiError(404, f"no printer {name!r}")
        changes = parse_json_body(request, MAX_STATE_BODY, "expected a JSON object")
        if not isinstance(changes, dict):
            raise ApiError(400, "body: expected a JSON object")
        for key, value in changes.items():
            if key not in STATE_FIELDS:
                raise ApiError(400, f"{key}: unknown field (allowed: {', '.join(STATE_FIELDS)})")
            if not isinstance(value, STATE_FIELDS[key]):
                raise ApiError(400, f"{key}: must be a {STATE_FIELDS[key].__name__}")
        if changes.get("paper", PAPER_OK) not in (PAPER_OK, PAPER_NEAR_END, PAPER_OUT):
            raise ApiError(400, "paper: must be ok, near_end or out")
        printer.factory.set_state(replace(printer.factory.state, **changes))
        return json_body(request, printer_json(printer, self.lan()))
