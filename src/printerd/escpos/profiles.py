"""
Printer profiles: how wide a model's paper is in dots, and how fine its dots are.

``profile_for(model)`` is pure: the name a printer reports (the ``printer_model`` setting) to
the profile the parser and the renderers lay receipts out with.  Facts from Epson's and Star's
specifications (and escpos-printer-db's media table, which agrees): an 80 mm TM-T88 prints
512 dots at 180 dpi, 42 font A columns; the 203 dpi 80 mm models (TM-T20, TM-m30, TSP100 ...)
576 dots, 48 columns; 58 mm models 384 dots, 32 columns.

A name is matched without regard to case, spaces or hyphens, by the longest known model it
starts with ("TM-T20III-012" is a TM-T20III, "TSP143IIIW" a TSP143).  A name that matches no
known model gets the default profile, the TM-T88V's (the model printerd reports by default),
marked ``known=False``.
"""

from __future__ import annotations

from dataclasses import dataclass

FONT_A_DOTS = 12  # a font A character cell is 12 x 24 dots on every model here


@dataclass(frozen=True)
class PrinterProfile:
    """A printer's paper and resolution, and how it reads characters."""

    model: str
    dots: int  # printable width in dots
    dpi: int
    known: bool = True
    code_pages: str = "epson"  # how the maker numbers ESC t pages (codepages.page_table_for)
    # In two-byte mode at power-on and after ESC @ (the two_byte_at_start setting): printers
    # with Chinese firmware read bytes >= 0x80 in their two-byte encoding until FS . leaves it.
    two_byte_at_start: bool = False

    @property
    def columns(self) -> int:
        """Font A characters per line."""
        return self.dots // FONT_A_DOTS


_WIDE_180 = (512, 180)  # 80 mm paper, 72 mm printed, 180 dpi
_WIDE_203 = (576, 203)  # 80 mm paper, 72 mm printed, 203 dpi
_NARROW_203 = (384, 203)  # 58 mm paper, 48 mm printed, 203 dpi

_MODELS: dict[str, tuple[int, int]] = {
    **dict.fromkeys(["TM-T88II", "TM-T88III", "TM-T88IV", "TM-T88V", "TM-T88VI", "TM-T88VII"],
                    _WIDE_180),
    **dict.fromkeys(["TM-T20", "TM-T20II", "TM-T20III", "TM-T20IV", "TM-T20X", "TM-m30",
                     "TM-m30II", "TM-m30III", "TM-T82", "TM-T82II", "TM-T82III", "TM-T82X",
                     "TM-T70", "TM-T70II", "TM-L90", "TM-m50", "TM-T100",
                     "TSP100", "TSP143", "TSP650", "TSP654", "TSP700", "TSP800",
                     "mC-Print3", "TSP600"], _WIDE_203),
    **dict.fromkeys(["TM-m10", "TM-P20", "TM-P60", "TM-T20II-58", "mC-Print2", "SM-L200",
                     "POS-58", "POS-5890", "ZJ-5870", "NT-5890K"], _NARROW_203),
    # Other makers' models whose ESC t numbering differs from Epson's (_MAKERS below).
    **dict.fromkeys(["SRP-350", "SRP-350III", "Metapace T-1", "MPT-II"], _WIDE_180),
    "HP A779": (528, 180),  # 44 font A columns
    **dict.fromkeys(["CT-S310II", "FP-1000", "POS-8360", "SUNMI P3 MIX", "XP-N160II", "XP-T80Q"],
                    _WIDE_203),
    **dict.fromkeys(["SUNMI", "SUNMI P2SE", "SUNMI P3H", "SUNMI P3KH", "Youku 58T"], _NARROW_203),
}
DEFAULT_MODEL = "TM-T88V"
# The maker's ESC t numbering of the models that do not number pages as Epson does (the names
# of codepages.MAKER_CODE_PAGES, from receipt-printer-encoder's printer data; the NT-5890K's
# is the POS-5890's in escpos-printer-db).
_MAKERS: dict[str, str] = {
    "SRP-350": "bixolon/legacy", "SRP-350III": "bixolon", "CT-S310II": "citizen",
    "FP-1000": "fujitsu", "HP A779": "hp", "Metapace T-1": "metapace", "MPT-II": "mpt",
    "POS-5890": "pos-5890", "NT-5890K": "pos-5890", "POS-8360": "pos-8360",
    "XP-N160II": "xprinter", "XP-T80Q": "xprinter", "Youku 58T": "youku",
    **dict.fromkeys(["SUNMI", "SUNMI P2SE", "SUNMI P3H", "SUNMI P3KH", "SUNMI P3 MIX"], "sunmi"),
}


def _key(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch not in " -_")


_BY_KEY = {_key(name): (name, size) for name, size in _MODELS.items()}


def profile_for(model: str, two_byte_at_start: bool = False) -> PrinterProfile:
    """
    The profile of the model a printer reports (see the module docstring for the rule), and
    whether the printer starts in two-byte mode (its setting: the model does not say).
    """
    key = _key(model)
    for length in range(len(key), 0, -1):
        found = _BY_KEY.get(key[:length])
        if found is not None:
            name, (dots, dpi) = found
            return PrinterProfile(name, dots, dpi, code_pages=_MAKERS.get(name, "epson"),
                                  two_byte_at_start=two_byte_at_start)
    dots, dpi = _MODELS[DEFAULT_MODEL]
    return PrinterProfile(model, dots, dpi, known=False, two_byte_at_start=two_byte_at_start)


DEFAULT_PROFILE = profile_for(DEFAULT_MODEL)
