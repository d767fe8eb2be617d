"""
Character decoding as an Epson printer does it: ``ESC t`` code pages, ``ESC R`` international
character sets, and ``FS &`` / ``FS .`` two-byte mode.

Pages Python has a codec for decode with it; Katakana, PC851 and TCVN-3 with tables of our own;
pages with neither (PC853, PC1098, PC1118, PC1119, user-defined) decode ASCII as ASCII and every
other byte as U+FFFD (a clear placeholder, never a wrong letter).
"""

from __future__ import annotations

import codecs
from typing import Optional

# Epson ESC t numbers -> Python codecs, or tables of our own (_TABLES); None: no table,
# placeholder for bytes >= 0x80.
CODE_PAGES: dict[int, Optional[str]] = {
    0: "cp437", 1: "katakana", 2: "cp850", 3: "cp860", 4: "cp863", 5: "cp865",
    11: "pc851",  # Greek: our own table, below
    12: None,  # PC853 Turkish
    13: "cp857", 14: "cp737", 15: "iso8859_7", 16: "cp1252", 17: "cp866", 18: "cp852",
    19: "cp858", 20: "cp874", 21: "cp874", 26: "cp874",  # Thai character codes 42/11/18
    30: "tcvn3", 31: "tcvn3-capital",  # Vietnamese: our own tables, below
    32: "cp720", 33: "cp775", 34: "cp855", 35: "cp861", 36: "cp862", 37: "cp864", 38: "cp869",
    39: "iso8859_2", 40: "iso8859_15",
    41: None, 42: None, 43: None,  # PC1098 Farsi, PC1118 / PC1119 Lithuanian
    44: "cp1125", 45: "cp1250", 46: "cp1251", 47: "cp1253", 48: "cp1254", 49: "cp1255",
    50: "cp1256", 51: "cp1257", 52: "cp1258", 53: "kz1048",
    255: None,  # user-defined page
}

# ESC R n: the 12 ASCII positions an international set replaces, in this order.
_POSITIONS = b"#$@[\\]^`{|}~"
INTERNATIONAL_SETS: dict[int, str] = {
    0: "#$@[\\]^`{|}~",  # USA
    1: "#$à°ç§^`éùè¨",  # France
    2: "#$§ÄÖÜ^`äöüß",  # Germany
    3: "£$@[\\]^`{|}~",  # United Kingdom
    4: "#$@ÆØÅ^`æøå~",  # Denmark I
    5: "#¤ÉÄÖÅÜéäöåü",  # Sweden
    6: "#$@°\\é^ùàòèì",  # Italy
    7: "₧$@¡Ñ¿^`¨ñ}~",  # Spain I
    8: "#$@[¥]^`{|}~",  # Japan
    9: "#¤ÉÆØÅÜéæøåü",  # Norway
    10: "#$ÉÆØÅÜéæøåü",  # Denmark II
    11: "#$á¡Ñ¿é`íñóú",  # Spain II
    12: "#$á¡Ñ¿éüíñóú",  # Latin America
    13: "#$@[₩]^`{|}~",  # Korea
    14: "#$ŽŠĐĆČžšđćč",  # Slovenia / Croatia (the YUSCII letters)
    15: "#¥@[\\]^`{|}~",  # China
    16: "#₫@[\\]^`{|}~",  # Vietnam
    # 17 (Arabia) is left as USA: no reliable table for it here.
}


_ASCII = "".join(map(chr, range(0x80)))
_UNDEFINED = "\ufffe"  # charmap_decode's mark for a byte with no character: U+FFFD comes out

# Epson page 1: ASCII, and JIS X 0201 half-width katakana at 0xA1..0xDF.
_KATAKANA_HIGH = "".join(chr(0xFF61 + b - 0xA1) if 0xA1 <= b <= 0xDF else _UNDEFINED
                         for b in range(0x80, 0x100))

# Pages Python has no codec for, bytes 0x80-0xFF, as the GNU C library's charmaps give them
# (`iconv -f <charmap>`; tests/test_parser.py checks them against iconv where it is installed).
# PC851 (Greek): glibc's IBM851; 0x91 has no character there.
_PC851_HIGH = (
    "ÇüéâäàΆçêëèïîΈÄΉ"
    "Ί\ufffeΌôöΎûùΏÖÜά£έήί"
    "ϊΐόύΑΒΓΔΕΖΗ\u00bdΘΙ\u00ab\u00bb"
    "░▒▓│┤ΚΛΝΜ╣║╗╝ΞΟ┐"
    "└┴┬├─┼ΠΡ╚╔╩╦╠═╬Σ"
    "ΤΥΦΧΨΩαβγ┘┌█▄δε▀"
    "ζηθικλμνξοπρσςτ´"
    "\u00ad±υφχ\u00a7ψ˛°¨ωϋΰώ■\u00a0"
)
# TCVN-3 (Vietnamese), 0xA0-0xFF: glibc's TCVN5712-1 (0xB0-0xB4 are combining tone marks);
# 0x80-0x9F hold no letters in TCVN-3. Page 31 is the "capital" font: the same positions in
# capitals.
_TCVN3_HIGH = _UNDEFINED * 32 + (
    "\u00a0ĂÂÊÔƠƯĐăâêôơưđẰ"
    "\u0300\u0309\u0303\u0301\u0323àảãáạẲằẳẵắẴ"
    "ẮẦẨẪẤỀặầẩẫấậèỂẻẽ"
    "éẹềểễếệìỉỄẾỒĩíịò"
    "Ổỏõóọồổỗốộờởỡớợù"
    "ỖủũúụừửữứựỳỷỹýỵỐ"
)

# Decoding tables (256 characters) for charmap_decode.
_TABLES: dict[Optional[str], str] = {
    "katakana": _ASCII + _KATAKANA_HIGH,
    "pc851": _ASCII + _PC851_HIGH,
    "tcvn3": _ASCII + _TCVN3_HIGH,
    "tcvn3-capital": _ASCII + _TCVN3_HIGH.upper(),
    None: _ASCII + _UNDEFINED * 128,  # no table: ASCII, and a clear placeholder for the rest
}


class CharacterDecoder:
    """Turns printed bytes into text under the current page, set and two-byte mode."""

    def __init__(self, two_byte_encoding: str = "gb18030") -> None:
        codecs.lookup(two_byte_encoding)  # fail early on a bad setting
        self.two_byte_encoding = two_byte_encoding
        self.reset()

    def reset(self) -> None:
        """ESC @: back to page 0, the USA set, one-byte mode."""
        self.page = 0
        self.international = 0
        self.two_byte = False

    def decode(self, data: bytes | bytearray) -> str:
        if self.two_byte:
            return data.decode(self.two_byte_encoding, "replace")
        codec = CODE_PAGES.get(self.page)
        table = _TABLES.get(codec)
        if table is not None or codec is None:
            text = codecs.charmap_decode(bytes(data), "replace", table or _TABLES[None])[0]
        else:
            text = data.decode(codec, "replace")
        if self.international:
            table = INTERNATIONAL_SETS.get(self.international)
            if table:
                text = text.translate({p: c for p, c in zip(_POSITIONS, table, strict=True)})
        return text
