"""
Character decoding as a Star printer does it: ``ESC GS t n`` code pages (Star's numbering),
``ESC R n`` international sets, and ``ESC $ n`` two-byte (Kanji / GB / Big5 / KS) mode.

Pages Python has a codec for decode with it; Star's own "Normal", Katakana and CP928 pages with
tables of our own (Star's character code tables, as the @point-of-sale/codepage-encoder package
publishes them); pages with neither decode ASCII as ASCII and every other byte as U+FFFD (a clear
placeholder, never a wrong letter).
"""

from __future__ import annotations



# Star ESC GS t numbers -> Python codecs, or tables of our own (_OWN_TABLES).
STAR_CODE_PAGES: dict[int, str] = {
    0: "star-normal", 1: "cp437", 2: "star-katakana", 4: "cp858", 5: "cp852", 6: "cp860",
    7: "cp861", 8: "cp863", 9: "cp865", 10: "cp866", 11: "cp855", 12: "cp857", 13: "cp862",
    14: "cp864", 15: "cp737", 16: "pc851", 17: "cp869", 18: "star-cp928", 21: "cp874",
    32: "cp1252", 33: "cp1250", 34: "cp1251",
    # Thai character code pages (TIS-620 based) 96..102
    **{n: "cp874" for n in range(96, 103)},
}

_UNDEFINED = "\ufffe"  # charmap_decode's mark for a byte with no character: U+FFFD comes out
_ASCII = "".join(map(chr, range(0x80)))

# Bytes 0x80-0xFF of Star's own pages.
_STAR_NORMAL_HIGH = (
    "\u00a0\U0001fb70\U0001fb76\U0001fb71\U0001fb77\U0001fb72\U0001fb78\U0001fb73\U0001fb79\U0001fb74\U0001fb7a\U0001fb75├\U0001fb7b\U0001fb7c\U0001fb7e"
    "\U0001fb7f\U0001fb7d▘▗▖▝╱╲◥◤┌┴┬┤♦╳"
    "ÄÖÜß§ªº\ufffe¢½\ufffe\ufffe¥¼Āë"
    "éèēêïíìīîöóòōôüú"
    "ùūûç¿\ufffe\ufffeĒↄ¡ÅøØäáà"
    "āâ°℃℉ΩµΣσ\ufffe\ufffeχ∞±÷π"
    "▌▄▀▐┼┘└┐█▒⏊←↑→↓╭"
    "⏉\U0001fb83\ufffe▁▍\ufffe\U0001fb88▚▞◢◣\U0001fb30⏸╰╯╮"
)
_STAR_KATAKANA_HIGH = (
    "\u00a0\U0001fb70\U0001fb76\U0001fb71\U0001fb77\U0001fb72\U0001fb78\U0001fb73\U0001fb79\U0001fb74\U0001fb7a\U0001fb75├\U0001fb7b\U0001fb7c\U0001fb7e"
    "\U0001fb7f\U0001fb7d▘▗▖▝╱╲◥◤┌┴┬┤♦╳"
    "\u0020｡｢｣､･ｦｧｨｩｪｫｬｭｮｯ"
    "ｰｱｲｳｴｵｶｷｸｹｺｻｼｽｾｿ"
    "ﾀﾁﾂﾃﾄﾅﾆﾇﾈﾉﾊﾋﾌﾍﾎﾏ"
    "ﾐﾑﾒﾓﾔﾕﾖﾗﾘﾙﾚﾛﾜﾝﾞﾟ"
    "▌▄▀▐┼┘└┐█▒⏊←↑→↓╭"
    "⏉\U0001fb83\ufffe▁▍\ufffe\U0001fb88▚▞◢◣\U0001fb30⏸╰╯╮"
)
_STAR_CP928_HIGH = (
    "ÇüéâäàåçêëèïîìÄÅ"
    "ÉæÆôöòûùÿÖÜ¢£¥₧ƒ"
    "\u00a0‘’£\ufffe\ufffe¦§¨©\ufffe«¬\u00ad\ufffe―"
    "°±²³΄΅Ά·ΈΉΊ»Ό½ΎΏ"
    "ΐΑΒΓΔΕΖΗΘΙΚΛΜΝΞΟ"
    "ΠΡ\ufffeΣΤΥΦΧΨΩΪΫάέήί"
    "ΰαβγδεζηθικλμνξο"
    "πρςστυφχψωϊϋόύώ\ufffe"
)

_OWN_TABLES = {
    "star-normal": _ASCII + _STAR_NORMAL_HIGH,
    "star-katakana": _ASCII + _STAR_KATAKANA_HIGH,
    "star-cp928": _ASCII + _STAR_CP928_HIGH,
}
_PLACEHOLDER_TABLE = _ASCII + _UNDEFINED * 128

# ESC R n: Star numbers sets 0-13 as Epson does (USA, France, Germany, UK, Denmark I, Sweden,
# Italy, Spain I, Japan, Norway, Denmark II, Spain II, Latin America, Korea), and the decoder
# replaces the same 12 ASCII positions; 14 (Ireland) and 15 (Legal) we leave as USA.


def _codec_table(codec: str) -> str:
    """The 256 characters a codec gives bytes 0-255, U+FFFE where it has none."""
    if codec in _OWN_TABLES:
        return _OWN_TABLES[codec]
    if codec == "pc851":
        from printerd.escpos.codepages import CharacterDecoder

        decoder = CharacterDecoder()
        decoder.page = 11  # Epson's number for the same PC851 table
        return "".join(decoder.decode(bytes([b])).replace("\ufffd", _UNDEFINED)
                       for b in range(256))
    return "".join(bytes([b]).decode(codec, "replace").replace("\ufffd", _UNDEFINED)
                   for b in range(256))


_TABLES: dict[int, str] = {}


def star_page(page: int) -> str:
    """The 256 characters Star's page ``page`` (ESC GS t numbering) prints."""
    table = _TABLES.get(page)
    if table is None:
        codec = STAR_CODE_PAGES.get(page)
        table = _TABLES[page] = _codec_table(codec) if codec else _PLACEHOLDER_TABLE
    return table


def international_set(n: int) -> int:
    """ESC R n: 0-15 in binary, or as an ASCII hex digit ("0".."9", "A".."F")."""
    if 0x30 <= n <= 0x39:
        n -= 0x30
    elif 0x41 <= n <= 0x46:
        n -= 0x37
    return n if n <= 13 else 0
