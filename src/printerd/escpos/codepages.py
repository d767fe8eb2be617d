"""
Character decoding as an Epson printer does it: ``ESC t`` code pages, ``ESC R`` international
character sets, and ``FS &`` / ``FS .`` two-byte mode.

Every page is one 256-character table, built the first time a job selects it (built at
start-up, the thirty codecs they come from would stay loaded in every daemon): from a Python
codec with Epson's differences applied (``_EPSON_CHANGES``), or from a table of our own
(``_OWN_TABLES``). Bytes a page leaves unassigned, and C1 control characters a codec would give
for 0x80-0x9F, decode as U+FFFD (a clear placeholder, never a wrong letter); so does every byte
>= 0x80 on pages with no table (Thai character code 17, user-defined). tests/test_parser.py
checks every page against Epson's tables as the receipt-printer-encoder project keeps them, and
against escpos-printer-db.
"""

from __future__ import annotations

import codecs
from functools import cache
from typing import Callable, Optional

from printerd.escpos.profiles import PrinterProfile

# FS & two-byte mode's encodings (the two_byte_encoding setting); the first is the default.
TWO_BYTE_ENCODINGS = ("gb18030", "shift_jis", "big5", "euc_kr")
DEFAULT_TWO_BYTE_ENCODING = TWO_BYTE_ENCODINGS[0]
JAPANESE_ENCODING = "shift_jis"  # a printer with it is a Japanese model

# A Japanese model's Kanji code systems.  Shift JIS: a Kanji's first byte says it is one, in or
# out of Kanji mode; JIS: in Kanji mode every two bytes of 0x21-0x7E are one (JIS X 0208).
# Epson's FS C n selects one for the job (else two-byte mode reads the printer's encoding);
# Star has a mode for each (ESC $ n: Shift JIS, ESC p / ESC q: JIS).
SHIFT_JIS_SYSTEM, JIS_SYSTEM = "shift_jis", "jis"
# JIS X 0208 bytes as EUC-JP writes them (the high bit set); other bytes as they are.
_JIS_AS_EUC = bytes(b | 0x80 if 0x21 <= b <= 0x7E else b for b in range(256))

# Epson ESC t numbers -> a Python codec, or the name of a table of our own (_OWN_TABLES, bytes
# 0x80-0xFF); None: no table, placeholder for bytes >= 0x80.
CODE_PAGES: dict[int, Optional[str]] = {
    0: "cp437", 1: "katakana", 2: "cp850", 3: "cp860", 4: "cp863", 5: "cp865",
    11: "pc851", 12: "pc853", 13: "cp857", 14: "cp737", 15: "iso8859_7", 16: "cp1252",
    17: "cp866", 18: "cp852", 19: "cp858",
    # Thai character codes 42, 11, 13, 14, 16, 17 (no table), 18.
    20: "thai42", 21: "thai11", 22: "thai13", 23: "thai14", 24: "thai16", 25: None, 26: "thai18",
    30: "tcvn3", 31: "tcvn3-capital",  # Vietnamese
    32: "cp720", 33: "cp775", 34: "cp855", 35: "cp861", 36: "cp862", 37: "cp864", 38: "cp869",
    39: "iso8859_2-epson", 40: "iso8859_15",
    41: "pc1098", 42: "pc1118", 43: "pc1119",  # Farsi, Lithuanian (LST 1283, LST 1284)
    44: "cp1125", 45: "cp1250", 46: "cp1251", 47: "cp1253", 48: "cp1254", 49: "cp1255",
    50: "cp1256", 51: "cp1257", 52: "cp1258", 53: "kz1048",
    255: None,  # user-defined page
}

# Where Epson's page differs from the Python codec of the same name (Epson's character code
# tables, as receipt-printer-encoder's data has them): byte -> character, U+FFFE: unassigned.
_EPSON_CHANGES: dict[str, dict[int, str]] = {
    "cp857": {0xD5: "€"},  # IBM added the euro to PC857 after Python's and glibc's tables
    "cp864": {0x25: "%"},  # Python's cp864 has the Arabic percent sign here; Epson prints ASCII
    "cp1125": {0xFA: "÷", 0xFB: "±"},  # RUSCII as Epson prints it (Python: "·", "√")
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

# Pages Python has no codec for, and the pages Epson changed beyond a few bytes, bytes 0x80-0xFF.
_OWN_TABLES: dict[str, str] = {
    # Katakana: block elements and line drawing (0x80-0x9F), JIS X 0201 half-width katakana,
    # symbols, suits and kanji for dates, times and prices (0xE0-0xFF).
    "katakana": (
        "▁▂▃▄▅▆▇█▏▎▍▌▋▊▉┼"
        "┴┬┤├▔─│▕┌┐└┘╭╮╰╯"
        " ｡｢｣､･ｦｧｨｩｪｫｬｭｮｯ"
        "ｰｱｲｳｴｵｶｷｸｹｺｻｼｽｾｿ"
        "ﾀﾁﾂﾃﾄﾅﾆﾇﾈﾉﾊﾋﾌﾍﾎﾏ"
        "ﾐﾑﾒﾓﾔﾕﾖﾗﾘﾙﾚﾛﾜﾝﾞﾟ"
        "═╞╪╡◢◣◥◤♠♥♦♣●○╱╲"
        "╳円年月日時分秒〒市区町村人▒\u00a0"
    ),
    "pc853": (
        "ÇüéâäàĉçêëèïîìÄĈ"
        "ÉċĊôöòûùİÖÜĝ£Ĝ×ĵ"
        "áíóúñÑĞğĤĥ\ufffe½Ĵş«»"
        "░▒▓│┤ÁÂÀŞ╣║╗╝Żż┐"
        "└┴┬├─┼Ŝŝ╚╔╩╦╠═╬¤"
        "\ufffe\ufffeÊËÈıÍÎÏ┘┌█▄\ufffeÌ▀"
        "ÓßÔÒĠġµĦħÚÛÙŬŭ\ufffe´"
        "\u00ad\ufffeℓŉ˘§÷¸°¨˙\ufffe³²■\u00a0"
    ),
    "pc1098": (
        "\ufffe\ufffe،؛؟\u064bآﺂاﺎءأﺄ"
        "ؤﺋبﺑﭖﭘتﺗثﺛجﺟﭺﭼ×ح"
        "ﺣخﺧدذرزﮊسﺳشﺷصﺻ«»"
        "░▒▓│┤ضﺿﻁﻃ╣║╗╝¤ﻅ┐"
        "└┴┬├─┼ﻇع╚╔╩╦╠═╬\ufffe"
        "ﻊﻋﻌغﻎﻏﻐفﻓ┘┌█▄قﻗ▀"
        "ﮎﻛﮒﮔلﻟمﻣنﻧوهﻫﻬﮤﯼ"
        "\u00adﯽﯾـ٠١٢٣٤٥٦٧٨٩■\u00a0"
    ),
    "pc1118": (
        "ÇüéâäàåçêëèïîìÄÅ"
        "ÉæÆôöòûùÿÖÜ¢£¥₧ƒ"
        "áíóúñÑªº¿⌐¬½¼¡«»"
        "░▒▓│┤ĄČĘĖ╣║╗╝ĮŠ┐"
        "└┴┬├─┼ŲŪ╚╔╩╦╠═╬Ž"
        "ąčęėįšųūž┘┌█▄▌▐▀"
        "αβΓπΣσµτΦΘΩδ∞φε⋂"
        "≡±≥≤„“÷≈°∙˙√ⁿ²■\u00a0"
    ),
    "pc1119": (
        "АБВГДЕЖЗИЙКЛМНОП"
        "РСТУФХЦЧШЩЪЫЬЭЮЯ"
        "абвгдежзийклмноп"
        "░▒▓│┤ĄČĘĖ╣║╗╝ĮŠ┐"
        "└┴┬├─┼ŲŪ╚╔╩╦╠═╬Ž"
        "ąčęėįšųūž┘┌█▄▌▐▀"
        "рстуфхцчшщъыьэюя"
        "Ёё≥≤„“÷≈°∙·√ⁿ²■\u00a0"
    ),
    "iso8859_2-epson": (
        "░▒▓│┤┘┌█©╣║╗╝¢¥┐"
        "└┴┬├─┼▄▀╚╔╩╦╠═╬®"
        "\u00a0Ą˘Ł¤ĽŚ§¨ŠŞŤŹ\u00adŽŻ"
        "°ą˛ł´ľśˇ¸šşťź˝žż"
        "ŔÁÂĂÄĹĆÇČÉĘËĚÍÎĎ"
        "ĐŃŇÓÔŐÖ×ŘŮÚŰÜÝŢß"
        "ŕáâăäĺćçčéęëěíîď"
        "đńňóôőö÷řůúűüýţ˙"
    ),
    "thai42": (
        "┌┐└┘│─├┤┴┬┼█←↑→↓"
        "๐๑๒๓๔๕๖๗๘๙ฃฅราไเ"
        "\u00a0กขคฆงจฉชซฌญฎฏฐฑ"
        "ฒณดตถทธนบปผฝพฟภม"
        "ยรฤลวศษสหฬอฮะฦาำ"
        "เแโใไๆฯ\u0e38\u0e39\u0e34\u0e35\u0e36\u0e37\u0e4a\u0e4d\u0e47"
        "\u0e48\u0e49\u0e4a\u0e4b\u0e4c\ufffe\ufffe\ufffe\ufffe\ufffe\ufffeะ\ufffe\ufffe\ufffe\ufffe"
        "\ufffe\ufffe\ufffe\ufffe\ufffe\ufffe\ufffe\ufffe\ufffe\ufffe\ufffe\ufffe\ufffe\ufffe\ufffe\u00a0"
    ),
    "thai11": (
        "\ufffe\ufffe\ufffe\ufffe\ufffe\ufffe\ufffe\ufffe\ufffe\ufffe\ufffe\ufffe\ufffe\ufffe\ufffe\ufffe"
        "\ufffe\ufffe\ufffe\ufffe\ufffe\ufffe\ufffe\ufffe\ufffe┌┐└┘│├┤"
        "\u00a0กขฃคฅฆงจฉชซฌญฎฏ"
        "ฐฑฒณดตถทธนบปผฝพฟ"
        "ภมยรฤลฦวศษสหฬอฮฯ"
        "ะ\u0e31าำ\u0e34\u0e35\u0e36\u0e37\u0e38\u0e39\u0e3a─┴┬┼฿"
        "เแโใไๅๆ\u0e47\u0e48\u0e49\u0e4a\u0e4b\u0e4c\u0e4d\u0e4e๏"
        "๐๑๒๓๔๕๖๗๘๙๚\u0e4aโใไ\ufffe"
    ),
    "thai13": (
        "\ufffe\ufffe\ufffe\ufffe\ufffe\ufffe\ufffe\ufffe\ufffe\ufffe\ufffe\ufffe\ufffe\ufffe\ufffe\ufffe"
        "\ufffe\ufffe\ufffe\ufffe\ufffe\ufffe\ufffe\ufffe\ufffe\ufffe\ufffe\ufffe\ufffe\ufffe\ufffe\ufffe"
        "\u00a0กขฃคฅฆงจฉชซฌญฎฏ"
        "ฐฑฒณดตถทธนบปผฝพฟ"
        "ภมยรฤลฦวศษสหฬอฮฯ"
        "ะ\u0e31าำ\u0e34\u0e35\u0e36\u0e37\u0e38\u0e39\u0e3aร\ufffe\ufffeเ฿"
        "เแโใไๅๆ\u0e47\u0e48\u0e49\u0e4a\u0e4b\u0e4c\u0e4d\u0e4e๏"
        "๐๑๒๓๔๕๖๗๘๙๚๛←↑→↓"
    ),
    "thai14": (
        "┌┐└┘│─├┤┴┬┼█\ufffe\ufffe\ufffe\ufffe"
        "รา\ufffeะ\ufffe\ufffe\ufffe\ufffe\ufffe\ufffe\ufffe\ufffe\ufffe\ufffe\ufffeเ"
        "\u00a0กขฃคฅฆงจฉชซฌญฎฏ"
        "ฐฑฒณดตถทธนบปผฝพฟ"
        "ภมยรฤลฦวศษสหฬอฮฯ"
        "ะ\u0e31าำ\u0e34\u0e35\u0e36\u0e37\u0e38\u0e39\u0e3a\ufffe\ufffe\ufffe\ufffe฿"
        "เแโใไๅๆ\u0e47\u0e48\u0e49\u0e4a\u0e4b\u0e4c\u0e4d\u0e4e๏"
        "๐๑๒๓๔๕๖๗๘๙๛\ufffe\ufffe\ufffe\ufffeไ"
    ),
    "thai16": (
        "┌┐└┘│─├┤┴┬┼█←↑→↓"
        "โใ\ufffeะ\ufffe\ufffe\ufffe\ufffe\ufffe\ufffe\ufffe\ufffe\ufffe\ufffe\ufffeเ"
        "\u00a0กขฃคฅฆงจฉชซฌญฎฏ"
        "ฐฑฒณดตถทธนบปผฝพฟ"
        "ภมยรฤลฦวศษสหฬอฮฯ"
        "ะ\u0e31าำ\u0e34\u0e35\u0e36\u0e37\u0e38\u0e39\u0e3a\ufffe\ufffe\ufffe\ufffe฿"
        "เแโใไๅๆ\u0e47\u0e48\u0e49\u0e4a\u0e4b\u0e4c\u0e4dไ๏"
        "๐๑๒๓๔๕๖๗๘๙๛\ufffe\ufffe\ufffe\ufffe\ufffe"
    ),
    "thai18": (
        "┌┐└┘│─├┤┴┬┼█←↑→↓"
        "รา\ufffeะ\ufffe\ufffe\ufffe\ufffe\ufffe\ufffe\ufffe\ufffe\ufffe\ufffe\ufffeเ"
        "\u00a0กขฃคฅฆงจฉชซฌญฎฏ"
        "ฐฑฒณดตถทธนบปผฝพฟ"
        "ภมยรฤลฦวศษสหฬอฮฯ"
        "ะ\u0e31าำ\u0e34\u0e35\u0e36\u0e37\u0e38\u0e39\u0e3a\ufffe\ufffe\ufffe\ufffe฿"
        "เแโใไๅๆ\u0e47\u0e48\u0e49\u0e4a\u0e4b\u0e4c\u0e4dไ๏"
        "๐๑๒๓๔๕๖๗๘๙๛\ufffe\ufffe\ufffe\ufffe\ufffe"
    ),
    # PC851 (Greek): glibc's IBM851 with Epson's order at 0xB7/0xB8 (Μ before Ν, alphabetical)
    # and a cedilla at 0xF7 where glibc has an ogonek; 0x91 has no character.
    "pc851": (
        "ÇüéâäàΆçêëèïîΈÄΉ"
        "Ί\ufffeΌôöΎûùΏÖÜά£έήί"
        "ϊΐόύΑΒΓΔΕΖΗ\u00bdΘΙ\u00ab\u00bb"
        "░▒▓│┤ΚΛΜΝ╣║╗╝ΞΟ┐"
        "└┴┬├─┼ΠΡ╚╔╩╦╠═╬Σ"
        "ΤΥΦΧΨΩαβγ┘┌█▄δε▀"
        "ζηθικλμνξοπρσςτ´"
        "\u00ad±υφχ\u00a7ψ¸°¨ωϋΰώ■\u00a0"
    ),
    # TCVN-3 (Vietnamese), 0xA0-0xFF: glibc's TCVN5712-1 (0xB0-0xB4 are combining tone marks);
    # 0x80-0x9F hold no letters in TCVN-3. Page 31 is the "capital" font: the same positions in
    # capitals.
    "tcvn3": _UNDEFINED * 32 + (
        "\u00a0ĂÂÊÔƠƯĐăâêôơưđẰ"
        "\u0300\u0309\u0303\u0301\u0323àảãáạẲằẳẵắẴ"
        "ẮẦẨẪẤỀặầẩẫấậèỂẻẽ"
        "éẹềểễếệìỉỄẾỒĩíịò"
        "Ổỏõóọồổỗốộờởỡớợù"
        "ỖủũúụừửữứựỳỷỹýỵỐ"
    ),
}
_OWN_TABLES["tcvn3-capital"] = _OWN_TABLES["tcvn3"].upper()


@cache
def _page_table(name: Optional[str]) -> str:
    """The 256 characters of one page, for charmap_decode."""
    if name is None:
        return _ASCII + _UNDEFINED * 128
    if name in _OWN_TABLES:
        high = _OWN_TABLES[name]
    else:
        high = bytes(range(0x80, 0x100)).decode(name, "replace")
        changes = _EPSON_CHANGES.get(name, {})
        high = "".join(changes.get(0x80 + i, c) for i, c in enumerate(high))
    low = "".join(_EPSON_CHANGES.get(name, {}).get(b, chr(b)) for b in range(0x80))
    # Unassigned bytes (U+FFFD from the codec) and C1 controls print nothing on an Epson.
    high = "".join(_UNDEFINED if c == "\ufffd" or "\x80" <= c <= "\x9f" else c for c in high)
    assert len(high) == 128, name
    return low + high


def epson_page(page: int) -> str:
    """The 256 characters Epson's page ``page`` (ESC t numbering) prints."""
    return _page_table(CODE_PAGES.get(page))


# Other makers' ESC t numbering, as receipt-printer-encoder's printer data keeps it (MIT): the
# page's name as in CODE_PAGES.  Pages of theirs we have no table for (several Hebrew and
# Baltic variants, Khmer, VISCII, cp3xxx) are left out: their bytes >= 0x80 are placeholders.
# The POS-5890 family's pages 50-94 that this data lacks come from escpos-printer-db (MIT), the
# capabilities python-escpos encodes with for the POS-5890 and the NT-5890K.
MAKER_CODE_PAGES: dict[str, dict[int, Optional[str]]] = {
    "bixolon": {0: "cp437", 1: "katakana", 2: "cp850", 3: "cp860", 4: "cp863", 5: "cp865",
        16: "cp1252", 17: "cp866", 18: "cp852", 19: "cp858", 21: "cp862", 22: "cp864",
        23: "thai42", 24: "cp1253", 25: "cp1254", 26: "cp1257", 28: "cp1251", 29: "cp737",
        30: "cp775", 31: "thai14", 33: "cp1255", 34: "thai11", 35: "thai18", 36: "cp855",
        37: "cp857", 38: "iso8859_7", 39: "thai16", 40: "cp1256", 41: "cp1258", 47: "cp1250",
        49: "tcvn3", 50: "tcvn3-capital"},
    "bixolon/legacy": {0: "cp437", 1: "katakana", 2: "cp850", 3: "cp860", 4: "cp863",
        5: "cp865", 19: "cp858"},
    "citizen": {0: "cp437", 1: "katakana", 2: "cp858", 3: "cp860", 4: "cp863", 5: "cp865",
        6: "cp852", 7: "cp866", 8: "cp857", 16: "cp1252", 21: "thai11", 26: "thai13",
        30: "tcvn3", 31: "tcvn3-capital", 32: "cp1258", 40: "cp864"},
    "fujitsu": {0: "cp437", 1: "katakana", 2: "cp850", 3: "cp860", 4: "cp863", 5: "cp865",
        8: "cp857", 16: "cp1252", 17: "cp866", 18: "cp852", 19: "cp858", 26: "thai13",
        40: "cp864"},
    "hp": {0: "cp437", 1: "cp850", 2: "cp852", 3: "cp860", 4: "cp863", 5: "cp865", 6: "cp858",
        7: "cp866", 8: "cp1252", 9: "cp862", 10: "cp737", 11: "cp874", 12: "cp857",
        13: "cp1251", 14: "cp1255", 15: "kz1048"},
    "metapace": {0: "cp437", 1: "katakana", 2: "cp850", 3: "cp860", 4: "cp863", 5: "cp865",
        19: "cp858"},
    "mpt": {0: "cp437", 2: "cp850", 3: "cp860", 4: "cp863", 5: "cp865", 6: "cp1251",
        7: "cp866"},
    "pos-5890": {0: "cp437", 1: "katakana", 2: "cp850", 3: "cp860", 4: "cp863", 5: "cp865",
        6: "latin_1", 8: "cp862", 16: "cp1252", 17: "cp866", 18: "cp852", 19: "cp858",
        23: "cp1251", 24: "cp737", 25: "cp1257", 27: "cp1258", 28: "cp864", 32: "cp1255",
        50: "cp437", 52: "cp437", 53: "cp858", 54: "cp852", 55: "cp860", 56: "cp861",
        57: "cp863", 58: "cp865", 59: "cp866", 60: "cp855", 61: "cp857", 62: "cp862",
        63: "cp864", 64: "cp737", 65: "pc851", 66: "cp869", 68: "pc1119", 69: "pc1118",
        71: "cp1252", 72: "cp1250", 73: "cp1251", 90: "cp1253", 91: "cp1254", 92: "cp1256",
        93: "cp720", 94: "cp1258", 95: "cp775"},
    "pos-8360": {0: "cp437", 1: "katakana", 2: "cp850", 3: "cp860", 4: "cp863", 5: "cp865",
        6: "latin_1", 7: "cp1253", 8: "cp862", 16: "cp1252", 17: "cp866", 18: "cp852",
        19: "cp858", 23: "cp1251", 24: "cp737", 25: "cp1257", 27: "cp1258", 28: "cp864",
        32: "cp1255", 56: "cp861", 60: "cp855", 61: "cp857", 65: "pc851", 66: "cp869",
        68: "pc1119", 69: "pc1118", 72: "cp1250", 91: "cp1254", 92: "cp1256", 93: "cp720",
        95: "cp775"},
    "sunmi": {0: "cp437", 2: "cp850", 3: "cp860", 4: "cp863", 5: "cp865", 13: "cp857",
        14: "cp737", 15: "iso8859_7", 16: "cp1252", 17: "cp866", 18: "cp852", 19: "cp858",
        21: "cp874", 33: "cp775", 34: "cp855", 36: "cp862", 37: "cp864"},
    "xprinter": {0: "cp437", 1: "katakana", 2: "cp850", 3: "cp860", 4: "cp863", 5: "cp865",
        6: "latin_1", 7: "cp1253", 11: "cp1255", 16: "cp1252", 17: "cp866", 18: "cp852",
        19: "cp858", 22: "cp864", 23: "cp1251", 24: "cp737", 25: "cp1257", 33: "cp1256"},
    "youku": {0: "cp437", 1: "katakana", 2: "cp850", 3: "cp860", 4: "cp863", 5: "cp865",
        6: "cp1251", 7: "cp866", 15: "cp862", 16: "cp1252", 18: "cp852", 19: "cp858",
        22: "cp864", 23: "latin_1", 24: "cp737", 25: "cp1257", 28: "cp855", 29: "cp857",
        30: "cp1250", 31: "cp775", 32: "cp1254", 33: "cp1255", 34: "cp1256", 35: "cp1258",
        38: "latin_1", 44: "iso8859_15", 47: "cp874"},
}


@cache
def page_table_for(code_pages: str) -> Callable[[int], str]:
    """
    How a maker numbers its pages (``PrinterProfile.code_pages``): page number -> its 256
    characters.  Epson's unless the maker is one of MAKER_CODE_PAGES.
    """
    if code_pages not in MAKER_CODE_PAGES:
        return epson_page
    names = MAKER_CODE_PAGES[code_pages]
    return lambda page: _page_table(names.get(page))


class CharacterDecoder:
    """
    Turns printed bytes into text under the current page, set and two-byte mode.

    ``page_table`` gives a page number's 256 characters (charmap_decode's U+FFFE where a byte
    prints none): Epson's numbering by default, a Star printer's for the Star parser.
    ``two_byte_at_start``: the printer is in two-byte mode at power-on and after ``ESC @``, as
    printers with Chinese firmware are (``PrinterProfile.two_byte_at_start``).
    """

    def __init__(self, two_byte_encoding: str = DEFAULT_TWO_BYTE_ENCODING,
                 page_table: Callable[[int], str] = epson_page,
                 two_byte_at_start: bool = False) -> None:
        codecs.lookup(two_byte_encoding)  # fail early on a bad setting
        self.two_byte_encoding = two_byte_encoding
        self._page_table = page_table
        self._two_byte_at_start = two_byte_at_start
        self.reset()

    def reset(self) -> None:
        """
        ESC @: back to page 0, the USA set, the two-byte mode the printer starts in and, on a
        Japanese model, no code system chosen by the job.
        """
        self.page = 0
        self.international = 0
        self.two_byte = self._two_byte_at_start
        self.kanji_system: Optional[str] = None

    def select_kanji_system(self, system: str) -> None:
        """A Kanji code system (``SHIFT_JIS_SYSTEM``, ``JIS_SYSTEM``): Japanese models only."""
        if self.two_byte_encoding == JAPANESE_ENCODING:
            self.kanji_system = system

    def jis_kanji_mode(self, on: bool) -> None:
        """Star's ESC p / ESC q: JIS Kanji mode on or off (Japanese models only)."""
        if self.two_byte_encoding == JAPANESE_ENCODING:
            self.kanji_system = JIS_SYSTEM if on else None
            self.two_byte = on

    def decode(self, data: bytes | bytearray) -> str:
        if self.kanji_system == SHIFT_JIS_SYSTEM or (self.two_byte and self.kanji_system is None):
            text = data.decode(self.two_byte_encoding, "replace")
        elif self.two_byte:
            text = bytes(data).translate(_JIS_AS_EUC).decode("euc_jp", "replace")
        else:
            text = codecs.charmap_decode(data, "replace", self._page_table(self.page))[0]
        # The set replaces one-byte characters in two-byte mode too (a Japanese job's "¥").
        if self.international:
            replaced = _set_translation(self.international)
            if replaced:
                text = text.translate(replaced)
        return text


@cache
def _set_translation(number: int) -> dict[int, str]:
    """ESC R ``number``'s replacements for ``str.translate``, built once (empty: none)."""
    table = INTERNATIONAL_SETS.get(number)
    return dict(zip(_POSITIONS, table, strict=True)) if table else {}


def printer_decoder(two_byte_encoding: str, profile: PrinterProfile,
                    page_table: Optional[Callable[[int], str]] = None) -> CharacterDecoder:
    """
    The decoder of a printer with ``profile``: its maker's ESC t numbering (or ``page_table``,
    another command set's), and the two-byte mode it starts in.
    """
    return CharacterDecoder(two_byte_encoding, page_table or page_table_for(profile.code_pages),
                            profile.two_byte_at_start)
