"""
Where printed characters land: lines, style runs, print positions and page mode.

``TextBuilder`` is fed by the parser (printed bytes, line feeds, and the commands that style or
place text) and keeps what a receipt's JSON and the renderers need:

- ``lines``: each printed line's text, with every run at the column the printer prints it
  from the print area's start (a position in dots divided by the width of the run's
  characters: font A 12 dots, font B 9, plus the ``ESC SP`` spacing, times the width
  multiple); the left margin and the alignment are not applied to the text, they are kept;
- ``styled``: the lines that are not plain left-aligned text, as ``LineLayout`` (alignment,
  runs of one style each with their dot position, left margin and print area width);
- ``pages``: the areas printed in page mode; their lines are in ``lines`` in reading order.

Positions follow Epson's TM references: ``ESC $`` (absolute) and ``ESC \\`` (relative) from the
start of the print area, ``HT`` to the next ``ESC D`` stop (default every 8 font A characters),
``GS L`` left margin and ``GS W`` print area width (both taken at the start of a line only);
a position outside the print area is ignored.  Page mode (``ESC L``): ``ESC W`` area, ``ESC T``
direction, ``GS $``/``GS \\`` vertical positions, ``FF`` prints and leaves, ``ESC FF`` prints
and stays, ``CAN`` and ``ESC S`` drop what is not printed.  Units: ``GS P`` sets them; by
default a horizontal unit is one dot and a vertical unit half a dot (1/360 inch at 180 dpi,
1/406 at 203 dpi, as on Epson's TM models).

Most lines are plain and left-aligned, so a line is kept as its text alone; changes of style
and position are kept as marks (character offset, value) and only lines with marks get runs.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Iterable, NamedTuple, Optional

from printerd.escpos.codepages import CharacterDecoder
from printerd.escpos.profiles import DEFAULT_PROFILE, PrinterProfile
from printerd.escpos.styles import CELLS, PLAIN, Style

# A run: its style, its text, and the dot it starts at from the print area's left edge
# (None: right after the run before it).
Run = tuple[Style, str, Optional[int]]

TAB_STOPS_MAX = 32  # ESC D takes at most 32 stops
# Spaces and blank lines one receipt's text may get from print positions and multi-line feeds:
# plenty for any receipt (a few hundred lines of columns), and a bound on what 4-byte commands
# can make the stored text grow by.
FILLER_LIMIT = 256 * 1024
DEFAULT_TAB_DOTS = 8 * CELLS["A"][0]  # every 8 font A characters


class LineLayout(NamedTuple):
    """A line that is not plain left-aligned text: how the printer places it (a tuple: the
    parser makes one per styled line)."""

    align: str
    runs: list[Run]
    margin: int = 0  # dots left of the print area (GS L)
    width: int = 0  # the print area's width in dots (GS W); 0: up to the paper's edge
    page: Optional[int] = None  # index into the receipt's pages for a page-mode line
    y: int = 0  # page mode: the baseline, dots from the top of the area (in its direction)


PLAIN_LINE = LineLayout("left", [])


@dataclass(frozen=True)
class Page:
    """An area printed in page mode; its lines are ``lines[first:end]`` of the receipt."""

    direction: int  # ESC T: 0 left to right, 1 bottom to top, 2 upside down, 3 top to bottom
    area: tuple[int, int, int, int]  # x, y, width, height in dots on the paper (0 0 0 0: unset)
    first: int
    end: int

    @property
    def json(self) -> dict:
        return {"direction": self.direction, "area": list(self.area),
                "lines": [self.first, self.end]}


@dataclass
class _PageBuffer:
    direction: int = 0
    area: tuple[int, int, int, int] = (0, 0, 0, 0)
    y: Optional[int] = None  # the current baseline; None until the first line or GS $
    fragments: list[tuple[int, list[Run]]] = field(default_factory=list)  # (y, runs)


_CELL_WIDTHS = {font: width for font, (width, _) in CELLS.items()}


def font_pitch(font: str, spacing: int) -> int:
    """Dots one character of ``font`` takes with its right spacing, not expanded."""
    return _CELL_WIDTHS.get(font, 12) + spacing


def cell_dots(style: Style, spacing: int) -> int:
    """How far one character of ``style`` moves the print position, in dots."""
    return font_pitch(style.font, spacing) * style.width


def display_width(text: str) -> int:
    """Columns ``text`` takes in a monospaced line: East Asian wide characters take two."""
    if text.isascii():
        return len(text)
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


class TextBuilder:
    """Collects printed characters into lines; see the module docstring."""

    def __init__(self, decoder: CharacterDecoder,
                 profile: PrinterProfile = DEFAULT_PROFILE,
                 default_units: tuple[int, int] = (0, 0)) -> None:
        """``default_units``: the motion units ESC @ gives back (GS P's; 0: Epson's defaults)."""
        self.decoder = decoder
        self.profile = profile
        self._default_units = default_units
        self.style = PLAIN
        self.align = "left"
        self.lines: list[str] = []
        self.styled: dict[int, LineLayout] = {}
        self.pages: list[Page] = []
        self._decoded: list[str] = []  # the current line, decoded so far
        self._bytes = bytearray()  # bytes under the current decoding
        self._marks: list[tuple[int, Style]] = []  # style changes in the current line
        self._line_align = "left"
        self._positions: list[tuple[int, int]] = []  # (character offset, dot) in the line
        self._x = 0  # dots taken by the current line up to the last decoded character
        self._image_in_line = False  # an ESC * image waits in the line buffer
        self.page: Optional[_PageBuffer] = None
        # Spaces and blank lines the receipt's text may still get from positions and feeds
        # (a list: _columns spends it).
        self._filler = [FILLER_LIMIT]
        self._sixth_inch = round(profile.dpi / 6)
        self._defaults()

    def _defaults(self) -> None:
        """The printer's settings after ESC @ for positions and spacing."""
        self.spacing = 0  # ESC SP, dots right of each character
        self._advance = cell_dots(self.style, 0)  # dots per character now
        self.tabs: tuple[int, ...] = ()  # ESC D stops in dots; () is the default
        self.tabs_set = False
        self.margin = 0  # GS L
        self.area_width = 0  # GS W; 0: the rest of the paper
        self.units = self._default_units  # GS P: motion units per inch (0: Epson's default)
        self.line_spacing = self._sixth_inch  # ESC 2: 1/6 inch

    # -- state carried between receipts --------------------------------------------------------

    def carry_over(self, previous: "TextBuilder") -> None:
        """A cut ends the receipt, not the printer's settings."""
        self.set_align(previous.align)
        self.set_style(previous.style)
        self.spacing, self.tabs, self.tabs_set = previous.spacing, previous.tabs, previous.tabs_set
        self.margin, self.area_width = previous.margin, previous.area_width
        self.units, self.line_spacing = previous.units, previous.line_spacing
        self._advance = previous._advance

    def reset(self) -> None:
        """ESC @: the printer's defaults for characters, style, alignment and positions."""
        self.before_switch()
        self.decoder.reset()
        self.set_style(PLAIN)
        self.set_align("left")
        self.page = None  # what a page held is dropped, as on the printer
        self._defaults()

    # -- characters ----------------------------------------------------------------------------

    def set_align(self, align: str) -> None:
        self.align = align
        if not self.has_pending():
            # Epson applies ESC a at the start of a line only.
            self._line_align = align

    def add(self, data: bytes) -> None:
        """Printed bytes, line feeds included."""
        first, feed, rest = data.partition(b"\n")
        self._bytes += first
        if not feed:
            return
        self.newline()
        *whole_lines, last = rest.split(b"\n")
        if (whole_lines and self.style is PLAIN and self.align == "left" and not self.margin
                and self.page is None):
            # Plain lines between two line feeds: decoded in one go (a line feed never sits
            # inside a character in any page or two-byte encoding we decode).
            self.lines += self.decoder.decode(b"\n".join(whole_lines)).split("\n")
        else:
            for line in whole_lines:
                self._bytes += line
                self.newline()
        self._bytes += last

    def before_switch(self) -> None:
        """Decode what came before a code page / set / style switch, under the old one."""
        if self._bytes:
            # One byte is one character cell (a two-byte character takes two).
            self._x += len(self._bytes) * self._advance
            self._decoded.append(self.decoder.decode(self._bytes))
            self._bytes.clear()

    def set_style(self, style: Style) -> None:
        if style is not self.style:
            self.before_switch()
            self.style = style
            # cell_dots(), inlined: style changes are frequent
            self._advance = (_CELL_WIDTHS.get(style.font, 12) + self.spacing) * style.width
            self._marks.append((sum(map(len, self._decoded)), style))

    def _offset(self) -> int:
        return sum(map(len, self._decoded))

    def has_pending(self) -> bool:
        return bool(self._bytes or self._decoded)

    def image_in_line(self) -> None:
        """ESC *: the image is printed with the line it sits in, by the next line feed."""
        self._image_in_line = True

    def newline(self, count: int = 1) -> None:
        if self._bytes:  # before_switch(), inlined: this runs once per printed line
            self._decoded.append(self.decoder.decode(self._bytes))
            self._bytes.clear()
        decoded = self._decoded
        text = decoded[0] if len(decoded) == 1 else "".join(decoded)
        if (self._marks or self._positions or self._line_align != "left" or self.margin
                or self.page is not None or self._image_in_line):
            self._special_line(text, count)
        else:
            self.lines.append(text)
            if count > 1:
                self._blank_lines(count - 1)
        self._decoded = []
        self._line_align = self.align
        self._x = 0
        if self._positions:
            self._positions = []
        if self._marks or self.style is not PLAIN:
            self._marks = [(0, self.style)] if self.style is not PLAIN else []

    def _special_line(self, text: str, count: int) -> None:
        """A line with styles, positions, a margin or an alignment, or in a page."""
        if self.page is not None:
            self._page_fragment(text)
            self.page.y = (self.page.y or 0) + self.line_spacing * count
            return
        if self._image_in_line and not text:
            pass  # the feed prints the image's line: no blank text line on paper
        elif self._marks or self._positions or self._line_align != "left" or self.margin:
            self._styled_line(text)
        else:
            self.lines.append(text)
        self._image_in_line = False
        if count > 1:
            self._blank_lines(count - 1)

    def _blank_lines(self, count: int) -> None:
        """ESC d n feeds n lines: blank lines in the text, within the filler allowance."""
        count = min(count, self._filler[0])
        self._filler[0] -= count
        self.lines.extend([""] * count)

    def _styled_line(self, text: str) -> None:
        runs = _runs(text, self._marks, self._positions)
        if self._positions:
            text = _columns(runs, self.spacing, self._filler)
        if (self._line_align != "left" or self._positions or self.margin
                or any(run[0] is not PLAIN for run in runs)):
            self.styled[len(self.lines)] = (
                LineLayout(self._line_align, runs, self.margin, self.area_width)
                if self.margin or self.area_width else LineLayout(self._line_align, runs))
        self.lines.append(text)

    # -- print positions -----------------------------------------------------------------------

    def _h_dots(self, n: int) -> int:
        per_inch = self.units[0] or self.profile.dpi
        return n * self.profile.dpi // per_inch

    def _v_dots(self, n: int) -> int:
        per_inch = self.units[1] or 2 * self.profile.dpi
        return n * self.profile.dpi // per_inch

    def _along_dots(self, n: int) -> int:
        """Page mode turned a quarter (ESC T 1/3) measures along the text in vertical units."""
        if self.page is not None and self.page.direction in (1, 3):
            return self._v_dots(n)
        return self._h_dots(n)

    def _across_dots(self, n: int) -> int:
        if self.page is not None and self.page.direction in (1, 3):
            return self._h_dots(n)
        return self._v_dots(n)

    def area(self) -> int:
        """The print area's width in dots: where positions and characters may go."""
        if self.page is not None:
            x, y, width, height = self.page.area
            along = height if self.page.direction in (1, 3) else width
            return along or self.profile.dots
        paper = self.profile.dots - self.margin
        return min(self.area_width, paper) if self.area_width else paper

    def move_to(self, dots: int) -> None:
        """Put the next character at ``dots`` from the print area's start (if inside it)."""
        if 0 <= dots < self.area():
            self.before_switch()
            self._x = dots
            self._positions.append((self._offset(), dots))

    def absolute(self, n: int) -> None:
        """ESC $ nL nH."""
        self.move_to(self._along_dots(n))

    def relative(self, n: int) -> None:
        """ESC \\ nL nH: a signed 16-bit move from the current position."""
        self.before_switch()
        self.move_to(self._x + self._along_dots(n - 0x10000 if n & 0x8000 else n))

    def tab(self) -> None:
        """HT: to the next tab stop; ignored when there is none inside the print area."""
        self.tab_to(self.tabs if self.tabs_set else range(DEFAULT_TAB_DOTS, self.area(),
                                                          DEFAULT_TAB_DOTS))

    def tab_to(self, stops: Iterable[int]) -> None:
        """To the first of ``stops`` (ascending, dots from the print area's start) past the
        current position; nothing when there is none inside the print area."""
        self.before_switch()
        for stop in stops:
            if stop > self._x:
                self.move_to(stop)
                return

    def pitch(self) -> int:
        """Dots one character of the current font takes with its spacing, not expanded."""
        return font_pitch(self.style.font, self.spacing)

    def set_tabs(self, columns: bytes) -> None:
        """ESC D n1 ... nk NUL: stops at n character widths (taken now), ascending."""
        width = cell_dots(self.style, self.spacing)
        stops: list[int] = []
        for n in columns[:TAB_STOPS_MAX]:
            if stops and n * width <= stops[-1]:
                break  # a stop not after the one before ends the list
            stops.append(n * width)
        self.tabs = tuple(stops)
        self.tabs_set = True

    def set_spacing(self, n: int) -> None:
        """ESC SP n: dots right of each character (doubled with double width)."""
        self.before_switch()
        self.spacing = self._h_dots(n)
        self._advance = cell_dots(self.style, self.spacing)

    def set_margin(self, n: int) -> None:
        """GS L nL nH, at the start of a line only."""
        if not self.has_pending() and self.page is None:
            self.margin = min(self._h_dots(n), self.profile.dots - CELLS["A"][0])

    def set_area_width(self, n: int) -> None:
        """GS W nL nH, at the start of a line only."""
        if not self.has_pending() and self.page is None:
            self.area_width = max(self._h_dots(n), 1)

    def set_units(self, x: int, y: int) -> None:
        """GS P x y: motion units of 1/x and 1/y inch (0: the printer's default)."""
        self.units = (x, y)

    def set_line_spacing(self, n: Optional[int]) -> None:
        """ESC 3 n in vertical units; None: ESC 2, 1/6 inch."""
        self.line_spacing = self._sixth_inch if n is None else self._v_dots(n)

    # -- page mode -----------------------------------------------------------------------------

    def page_mode(self) -> None:
        """ESC L: what follows is placed in a page until FF (ESC L inside a page is ignored)."""
        if self.page is None:
            if self.has_pending():
                self.newline()
            self.page = _PageBuffer()

    def page_direction(self, n: int) -> None:
        """ESC T n."""
        if self.page is not None:
            self.page.direction = n & 0x03 if n in (0, 1, 2, 3, 48, 49, 50, 51) else 0

    def page_area(self, params: bytes) -> None:
        """ESC W xL xH yL yH dxL dxH dyL dyH: the area, on the paper, in motion units."""
        if self.page is None:
            return
        x, y, dx, dy = (params[i] | params[i + 1] << 8 for i in range(0, 8, 2))
        x, dx = self._h_dots(x), self._h_dots(dx)
        y, dy = self._v_dots(y), self._v_dots(dy)
        paper = self.profile.dots
        x = min(x, paper - 1)
        dx = min(dx, paper - x)
        self._page_fragment_pending()
        self.page.area = (x, y, dx, dy)
        self.page.y = None
        self._x = 0

    def page_vertical(self, n: int, relative: bool) -> None:
        """GS $ (absolute) / GS \\ (relative, signed) in page mode; ignored in standard mode."""
        if self.page is None:
            return
        if relative:
            n = n - 0x10000 if n & 0x8000 else n
        self._page_fragment_pending()
        dots = self._across_dots(n)
        self.page.y = max((self.page.y or 0) + dots if relative else dots, 0)

    def print_page(self, leave: bool) -> None:
        """FF (print and leave page mode) / ESC FF (print, keep the page as it is)."""
        if self.page is None:
            return
        self._page_fragment_pending()
        self._emit_page(self.page)
        # A page printed again unchanged by a second ESC FF would store its text twice (and
        # a job of ESC FF bytes would multiply it): printed is printed once.
        self.page.fragments = []
        if leave:
            # Back in standard mode at the start of a line.
            self.page = None
            self._line_align = self.align
            self._x = 0
            self._positions = []

    def clear_page(self, leave: bool) -> None:
        """CAN (clear the page) / ESC S (back to standard mode): the page is not printed."""
        if self.page is None:
            return
        self.before_switch()
        self._decoded, self._marks, self._positions = [], [], []
        if self.style is not PLAIN:
            self._marks = [(0, self.style)]
        self.page.fragments = []
        if leave:
            self.page = None

    def _page_fragment_pending(self) -> None:
        """Text placed so far at the current vertical position becomes a fragment; the text
        after it continues at the same horizontal position."""
        assert self.page is not None
        self.before_switch()
        if not self._decoded:
            return
        x = self._x
        self._page_fragment("".join(self._decoded))
        self._decoded = []
        if self._marks or self.style is not PLAIN:
            self._marks = [(0, self.style)] if self.style is not PLAIN else []
        self._positions = [(0, x)]

    def _page_fragment(self, text: str) -> None:
        assert self.page is not None
        runs = _runs(text, self._marks, self._positions)
        if not any(t.strip() for _, t, _ in runs):
            return
        if runs[0][2] is None:
            runs[0] = (runs[0][0], runs[0][1], 0)
        if self.page.y is None:
            # The first line sits on the area's top edge: its baseline is its height down.
            self.page.y = max(CELLS.get(s.font, CELLS["A"])[1] * s.height for s, _, _ in runs)
        self.page.fragments.append((self.page.y, runs))

    def _emit_page(self, page: _PageBuffer) -> None:
        """The page's fragments as lines in reading order: top to bottom, then left to right."""
        if not page.fragments:
            return
        first = len(self.lines)
        by_y: dict[int, list[Run]] = {}
        for y, runs in sorted(page.fragments, key=lambda f: (f[0], f[1][0][2] or 0)):
            by_y.setdefault(y, []).extend(runs)
        index = len(self.pages)
        for y, runs in sorted(by_y.items()):
            text = _columns(runs, self.spacing, self._filler)
            self.styled[len(self.lines)] = LineLayout("left", runs, 0, 0, index, y)
            self.lines.append(text)
        self.pages.append(Page(page.direction, page.area, first, len(self.lines)))

    # -- the end -------------------------------------------------------------------------------

    def finish(self) -> tuple[list[str], dict[int, LineLayout], list[Page]]:
        """The lines without trailing spaces or trailing blank lines, the styled ones, pages."""
        if self.page is not None:
            # A page the job never printed (no FF before the cut or the end): kept, not lost.
            self._page_fragment_pending()
            self._emit_page(self.page)
            self.page.fragments = []
        if self.has_pending():
            self.newline()
        lines = [line.rstrip() for line in self.lines]
        while lines and not lines[-1].strip():  # page lines are never blank: they stay
            lines.pop()
        styled = {n: _rstrip_layout(layout) for n, layout in self.styled.items()
                  if n < len(lines)}
        return lines, styled, self.pages


def _runs(text: str, marks: list[tuple[int, Style]],
          positions: list[tuple[int, int]] | tuple = ()) -> list[Run]:
    """Cut a line's text at its style and position marks into runs, dropping empty ones."""
    if not positions:
        return _style_runs(text, marks)
    events = sorted([(offset, 0, style, 0) for offset, style in marks]
                    + [(offset, 1, PLAIN, x) for offset, x in positions],
                    key=lambda event: (event[0], event[1]))
    runs: list[Run] = []
    style, start, x = PLAIN, 0, None
    for offset, kind, next_style, dots in events + [(len(text), 2, PLAIN, 0)]:
        if offset > start:
            chunk = text[start:offset]
            if x is None and runs and runs[-1][0] is style:
                runs[-1] = (style, runs[-1][1] + chunk, runs[-1][2])
            else:
                runs.append((style, chunk, x))
            start, x = offset, None
        if kind == 0:
            style = next_style
        elif kind == 1:
            x = dots
    return runs


def _style_runs(text: str, marks: list[tuple[int, Style]]) -> list[Run]:
    """``_runs`` for the usual line: style marks only."""
    runs: list[Run] = []
    style, start = PLAIN, 0
    for offset, next_style in marks + [(len(text), PLAIN)]:
        if offset > start:
            if runs and runs[-1][0] is style:
                runs[-1] = (style, runs[-1][1] + text[start:offset], None)
            else:
                runs.append((style, text[start:offset], None))
            start = offset
        style = next_style
    return runs


def _columns(runs: list[Run], spacing: int, filler: list[int]) -> str:
    """
    The line's text with every positioned run at the column the printer prints it, counted
    from the print area's start.  ``filler`` holds the spaces the receipt may still add: each
    position command can ask for a line's width of them, and a receipt is not allowed to grow
    much past the bytes it came in (past the allowance, one space stands for the gap).
    """
    parts: list[str] = []
    used = 0
    for number, (style, text, x) in enumerate(runs):
        if x is None and number == 0:
            x = 0
        if x is not None:
            width = cell_dots(style, spacing)
            column = x // width
            if column > used:
                gap = column - used if column - used <= filler[0] else 1
                filler[0] -= gap
                parts.append(" " * gap)
                used += gap
            elif column < used and parts and not parts[-1].endswith(" "):
                # Printed over what is there: kept readable, one space after it.
                parts.append(" ")
                used += 1
        parts.append(text)
        used += display_width(text)
    return "".join(parts)


def _rstrip_layout(layout: LineLayout) -> LineLayout:
    last = layout.runs[-1] if layout.runs else None
    if last is not None and not last[1][-1:].isspace():
        return layout  # nothing to strip: most lines
    runs = list(layout.runs)
    while runs:
        style, text, _ = runs[-1]
        # Trailing spaces print nothing, unless inverted or underlined.
        if style.invert or style.underline or text.rstrip():
            break
        runs.pop()
    if runs and not (runs[-1][0].invert or runs[-1][0].underline):
        runs[-1] = (runs[-1][0], runs[-1][1].rstrip(), runs[-1][2])
    return layout._replace(runs=runs)


def line_styles_json(styled: dict[int, LineLayout]) -> list[dict]:
    """The receipt JSON's ``line_styles``: lines not listed are plain and left-aligned."""
    found = []
    for n, layout in sorted(styled.items()):
        entry: dict = {"line": n, "align": layout.align, "runs": [
            {"text": text, **style.json} if x is None else {"text": text, **style.json, "x": x}
            for style, text, x in layout.runs]}
        if layout.margin:
            entry["margin"] = layout.margin
        if layout.width:
            entry["width"] = layout.width
        if layout.page is not None:
            entry["page"] = layout.page
            entry["y"] = layout.y
        found.append(entry)
    return found


def full_lines(lines: list[str], styled: dict[int, LineLayout]) -> list[LineLayout]:
    """Every line's layout, for the renderers."""
    return [styled.get(n) or (LineLayout("left", [(PLAIN, line, None)]) if line else PLAIN_LINE)
            for n, line in enumerate(lines)]
