"""A small view model for alert emails, and its two renderings: HTML and plain text (pure).

An alert email is worked out once, as facts in an :class:`EmailView` (greeting, the one
number that matters, an optional :class:`Bar`, label/value rows, tables, links, the footer,
the raw message), then rendered twice by :func:`render_html` and :func:`render_text`, so the
two parts of the email can never tell different stories. Budgets alerts
(:mod:`snsmiddleware.alert_email`) build one; any other alert kind can build its own.

The HTML is written for mail clients, which are not browsers:

* layout is tables and inline ``style``/``bgcolor``/``width`` attributes only: no ``<style>``
  block (Gmail and others drop or rewrite it), no images, no script, no web fonts, no CSS
  positioning, flexbox or grid;
* the card is fluid (``width="100%"`` with a ``max-width``), so it fits a 375 px phone, and
  long unbroken text (budget names, URLs in the raw message) wraps instead of widening it;
* dark mode: every text sits on a background colour of its own (``bgcolor`` and
  ``background-color``), every pair at least 4.5:1. A dark palette of its own would need a
  ``<style>`` media query, which clients strip, so the email declares ``color-scheme:
  light``: clients that honour it (Apple Mail, Chromium-based ones) show these colours, and
  clients that force dark mode anyway (Gmail's and Outlook's apps invert light backgrounds)
  get mid-tone fills and dark inks that stay readable inverted (the bar's mark is drawn as a
  stripe on the track colour, in the bar and in its legend, so it shows either way);
* the raw message is collapsed in ``<details>``; a client without ``<details>`` (Outlook,
  Gmail's web client) shows it expanded under its heading, after everything else.

Security: every value is escaped with :func:`html.escape` (attributes included) by the
renderer, not the caller; a :class:`Link` accepts only an ``https://`` URL without spaces or
quotes, and the caller is responsible for having validated where it points.
"""

from __future__ import annotations

import enum
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Final

#: The card's width on a large screen; it shrinks to fit smaller ones.
CARD_MAX_WIDTH_PX: Final = 600
#: Characters of the plain-text bar between its brackets.
TEXT_BAR_WIDTH: Final = 30

# Colours: mid-to-dark tones on light backgrounds, each pair at least WCAG AA (4.5:1), so a
# client that inverts the light backgrounds for dark mode still finds a contrasting pair.
SURROUND: Final = "#eef1f4"
CARD: Final = "#ffffff"
INK: Final = "#1f2328"
MUTED: Final = "#57606a"
RULE: Final = "#d0d7de"
PANEL: Final = "#f6f8fa"
TRACK: Final = "#c9d1d9"
MARKER: Final = "#1f2328"
BUTTON: Final = "#0b57d0"
BUTTON_INK: Final = "#ffffff"
_FONT: Final = "font-family:Arial,Helvetica,sans-serif"
_MONO: Final = "font-family:Menlo,Consolas,'Courier New',monospace"
_WRAP: Final = "overflow-wrap:anywhere;word-wrap:break-word;word-break:break-word"

_SAFE_URL: Final = re.compile(r"https://[A-Za-z0-9.-]+(?:/[A-Za-z0-9/#._~?=&%+:@!$,;*()-]*)?")


class Tone(enum.Enum):
    """How serious the lead number is: its colour (text, and the bar's fill)."""

    #: Over budget, or an actual overrun.
    ALERT = ("#b3261e", "#d93025")
    #: A threshold crossed, still within budget (or a forecast).
    WARNING = ("#8a4b00", "#e8710a")
    #: Nothing to worry about yet.
    INFO = ("#0b57d0", "#1a73e8")

    @property
    def ink(self) -> str:
        """The colour of the headline text (dark enough for small text on white)."""
        return self.value[0]

    @property
    def fill(self) -> str:
        """The colour of the bar's filled part."""
        return self.value[1]


@dataclass(frozen=True, slots=True)
class Link:
    """A link in the email: ``url`` must be ``https://`` with no spaces or quotes.

    The renderer escapes it again; the check here keeps a caller's mistake (a ``javascript:``
    URL, an unvalidated value) from ever becoming a link. Validating *where* it points (a
    genuine AWS console host) is the caller's job.
    """

    text: str
    url: str

    def __post_init__(self) -> None:
        if _SAFE_URL.fullmatch(self.url) is None:
            raise ValueError(f"not a safe https URL for an email link: {self.url[:80]!r}")


@dataclass(frozen=True, slots=True)
class Bar:
    """A horizontal bar: ``value`` against ``scale`` (the whole bar), optionally a marker.

    :param value: the filled amount (spent, forecast); drawn capped at the whole bar.
    :param scale: what the whole bar stands for (the budgeted amount); positive.
    :param marker: where to draw a mark (the alert threshold), in the units of ``scale``.
    :param value_label: the legend for the filled part (``Spent 0.59 USD (295%)``).
    :param scale_label: the legend for the whole bar (``Budget 0.20 USD``).
    :param marker_label: the legend for the mark (``Alert threshold 0.16 USD (80%)``).
    :param tone: the fill colour.
    """

    value: Decimal
    scale: Decimal
    value_label: str
    scale_label: str
    tone: Tone
    marker: Decimal | None = None
    marker_label: str | None = None

    def __post_init__(self) -> None:
        if not self.scale > 0:
            raise ValueError("a bar needs a positive scale")

    @property
    def filled(self) -> Decimal:
        """The filled share of the bar, 0 to 1 (a value over the scale fills it)."""
        return _share(self.value, self.scale)

    @property
    def marked(self) -> Decimal | None:
        """Where the mark sits, 0 to 1, or ``None``."""
        return None if self.marker is None else _share(self.marker, self.scale)


def _share(part: Decimal, whole: Decimal) -> Decimal:
    share = part / whole
    return min(max(share, Decimal(0)), Decimal(1))


@dataclass(frozen=True, slots=True)
class Table:
    """A titled table with a header row (root causes, line items)."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class EmailView:
    """Everything an alert email says, computed once; render with :func:`render_html` and
    :func:`render_text`.

    :param title: the HTML ``<title>`` (the Subject, usually).
    :param heading: what the alert is about (``AWS Budgets alert: Test Budget``): the
        first line of the text part, a line under the kicker in HTML.
    :param kicker: a short line above everything (``Actual cost · monthly budget``).
    :param greeting: ``Hi Ana Lima,`` (empty: none).
    :param headline: the one number that matters (``295% of budget used``).
    :param tone: the headline's and the bar's colour.
    :param subline: what follows from it (``0.39 USD over budget``), or ``None``.
    :param summary: one or two sentences in words.
    :param bar: an optional :class:`Bar`.
    :param rows: label/value pairs, in order.
    :param tables: further :class:`Table` s.
    :param actions: links; the first is drawn as the button.
    :param notes: warnings shown prominently (details that could not be read).
    :param footer: paragraphs of the footer (why you got this, how to change that).
    :param raw_heading: the heading of the collapsed raw message.
    :param raw_text: the original message text, or ``None``.
    """

    title: str
    heading: str
    kicker: str
    greeting: str
    headline: str
    tone: Tone
    summary: str
    subline: str | None = None
    bar: Bar | None = None
    rows: tuple[tuple[str, str], ...] = ()
    tables: tuple[Table, ...] = ()
    actions: tuple[Link, ...] = ()
    notes: tuple[str, ...] = ()
    footer: tuple[str, ...] = field(default=())
    raw_heading: str = "Original message"
    raw_text: str | None = None


def percent_text(share: Decimal) -> str:
    """``Decimal("0.805")`` -> ``"80.5"``: a share as a percentage for a ``width`` attribute."""
    return f"{(share * 100).quantize(Decimal('0.01'), ROUND_HALF_UP).normalize():f}"


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _lines(text: str) -> str:
    # Normalised line ends only: a lone CR must not reach the SMTP body.
    return "\n".join(text.splitlines())


# --- HTML ------------------------------------------------------------------------------------


def _bar_segments(bar: Bar) -> list[tuple[Decimal, bool, str]]:
    """The bar's cells, left to right: (width share, filled?, border style)."""
    filled = bar.filled
    marked = bar.marked
    cuts = sorted({Decimal(0), filled, Decimal(1)} | ({marked} if marked is not None else set()))
    segments = []
    for start, end in zip(cuts, cuts[1:], strict=False):
        border = ""
        if marked is not None and start == marked:
            border = f"border-left:3px solid {MARKER};"
        if marked is not None and end == marked == Decimal(1):
            border += f"border-right:3px solid {MARKER};"
        segments.append((end - start, end <= filled, border))
    return segments


def _bar_html(bar: Bar) -> str:
    cells = "".join(
        f'<td class="{"bar-fill" if is_filled else "bar-rest"}" width="{percent_text(width)}%" '
        f'height="16" bgcolor="{bar.tone.fill if is_filled else TRACK}" '
        f'style="width:{percent_text(width)}%;height:16px;'
        f"background-color:{bar.tone.fill if is_filled else TRACK};{border}"
        f'font-size:0;line-height:0">&nbsp;</td>'
        for width, is_filled, border in _bar_segments(bar)
    )
    # Each legend entry has a swatch drawn like its part of the bar: the mark is a stripe on
    # the track colour, so it reads the same whether a client keeps or inverts the colours.
    legend = [(bar.tone.fill, "", bar.value_label)]
    if bar.marker_label is not None:
        legend.append((TRACK, f"border-left:3px solid {MARKER};", bar.marker_label))
    legend.append((TRACK, "", bar.scale_label))
    legend_rows = "".join(
        '<tr><td width="14" style="width:14px;padding:3px 8px 3px 0;vertical-align:middle">'
        f'<table role="presentation" cellpadding="0" cellspacing="0" border="0"><tr>'
        f'<td width="12" height="12" bgcolor="{colour}" style="width:12px;height:12px;'
        f'background-color:{colour};{border}font-size:0;line-height:0">&nbsp;</td></tr></table>'
        f'</td><td style="{_FONT};font-size:14px;line-height:20px;color:{INK};{_WRAP}">'
        f"{_e(text)}</td></tr>"
        for colour, border, text in legend
    )
    return (
        '<table role="presentation" class="bar" width="100%" cellpadding="0" cellspacing="0" '
        f'border="0" style="width:100%;table-layout:fixed;border-collapse:separate;'
        f'border:1px solid {RULE}">'
        f"<tr>{cells}</tr></table>\n"
        '<table role="presentation" class="bar-legend" cellpadding="0" cellspacing="0" '
        f'border="0" style="margin-top:10px">{legend_rows}</table>\n'
    )


def _rows_html(rows: Sequence[tuple[str, str]]) -> str:
    body = "".join(
        f'<tr><td valign="top" style="{_FONT};font-size:13px;line-height:19px;color:{MUTED};'
        f'padding:6px 12px 6px 0;border-top:1px solid {RULE};width:38%">{_e(label)}</td>'
        f'<td valign="top" style="{_FONT};font-size:14px;line-height:19px;color:{INK};'
        f'padding:6px 0;border-top:1px solid {RULE};{_WRAP}">{_e(value)}</td></tr>'
        for label, value in rows
    )
    return (
        '<table role="presentation" class="facts" width="100%" cellpadding="0" cellspacing="0" '
        f'border="0" style="width:100%;table-layout:fixed;border-collapse:collapse">{body}'
        "</table>\n"
    )


def _table_html(table: Table) -> str:
    head = "".join(
        f'<th align="left" style="{_FONT};font-size:12px;line-height:16px;color:{MUTED};'
        f'padding:4px 6px;border-bottom:1px solid {RULE};{_WRAP}">{_e(column)}</th>'
        for column in table.columns
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td valign="top" style="{_FONT};font-size:13px;line-height:18px;color:{INK};'
            f'padding:4px 6px;border-bottom:1px solid {RULE};{_WRAP}">{_e(cell)}</td>'
            for cell in row
        )
        + "</tr>"
        for row in table.rows
    )
    return (
        f'<p style="{_FONT};font-size:15px;line-height:20px;font-weight:bold;color:{INK};'
        f'margin:20px 0 6px">{_e(table.title)}</p>\n'
        '<table class="data" width="100%" cellpadding="0" cellspacing="0" border="0" '
        f'style="width:100%;table-layout:fixed;border-collapse:collapse">'
        f"<tr>{head}</tr>{body}</table>\n"
    )


def _actions_html(actions: Sequence[Link]) -> str:
    if not actions:
        return ""
    first, *others = actions
    button = (
        '<table role="presentation" cellpadding="0" cellspacing="0" border="0" '
        'style="margin:4px 0 8px"><tr>'
        f'<td bgcolor="{BUTTON}" style="background-color:{BUTTON};border-radius:6px">'
        f'<a class="button" href="{_e(first.url)}" style="display:inline-block;padding:12px 20px;'
        f"{_FONT};font-size:15px;line-height:20px;font-weight:bold;color:{BUTTON_INK};"
        f'text-decoration:none;border-radius:6px;{_WRAP}">{_e(first.text)}</a></td></tr></table>\n'
    )
    more = "".join(
        f'<p style="{_FONT};font-size:13px;line-height:18px;margin:4px 0;color:{MUTED}">'
        f'<a href="{_e(link.url)}" style="color:{BUTTON};{_WRAP}">{_e(link.text)}</a></p>\n'
        for link in others
    )
    return button + more


def _section(content: str, padding: str = "0 24px 16px") -> str:
    return (
        f'<tr><td bgcolor="{CARD}" style="background-color:{CARD};padding:{padding};{_WRAP}">'
        f"{content}</td></tr>\n"
    )


def render_html(view: EmailView) -> str:
    """The HTML part of ``view``: tables and inline styles, every value escaped."""
    text_style = f"{_FONT};color:{INK};{_WRAP}"
    parts = [
        f'<p class="kicker" style="{_FONT};font-size:12px;line-height:16px;letter-spacing:.04em;'
        f'text-transform:uppercase;color:{MUTED};margin:0 0 4px">{_e(view.kicker)}</p>\n',
        f'<p class="heading" style="{text_style};font-size:15px;line-height:20px;'
        f'font-weight:bold;margin:0 0 16px">{_e(view.heading)}</p>\n',
    ]
    if view.greeting:
        parts.append(
            f'<p class="greeting" style="{text_style};font-size:16px;line-height:22px;'
            f'margin:0 0 8px">{_e(view.greeting)}</p>\n'
        )
    parts.append(
        f'<h1 class="headline" style="{_FONT};font-size:30px;line-height:36px;font-weight:bold;'
        f'color:{view.tone.ink};margin:0 0 4px;{_WRAP}">{_e(view.headline)}</h1>\n'
    )
    if view.subline:
        parts.append(
            f'<p class="subline" style="{_FONT};font-size:18px;line-height:24px;'
            f'font-weight:bold;color:{view.tone.ink};margin:0 0 10px;{_WRAP}">'
            f"{_e(view.subline)}</p>\n"
        )
    parts.append(
        f'<p class="summary" style="{text_style};font-size:15px;line-height:22px;margin:8px 0 0">'
        f"{_e(view.summary)}</p>\n"
    )
    sections = [_section("".join(parts), "24px 24px 16px")]
    if view.bar is not None:
        sections.append(_section(_bar_html(view.bar), "4px 24px 16px"))
    for note in view.notes:
        sections.append(
            _section(
                f'<table role="presentation" width="100%" cellpadding="0" cellspacing="0" '
                f'border="0"><tr><td bgcolor="{PANEL}" style="background-color:{PANEL};'
                f"border-left:4px solid {Tone.WARNING.fill};padding:10px 12px;{_FONT};"
                f'font-size:14px;line-height:20px;color:{INK};{_WRAP}">'
                f'<strong class="note">{_e(note)}</strong></td></tr></table>\n'
            )
        )
    if view.actions:
        sections.append(_section(_actions_html(view.actions)))
    if view.rows:
        sections.append(_section(_rows_html(view.rows)))
    for table in view.tables:
        sections.append(_section(_table_html(table)))
    if view.raw_text is not None:
        sections.append(
            _section(
                f'<details><summary style="{_FONT};font-size:13px;line-height:18px;'
                f'color:{MUTED};cursor:pointer">{_e(view.raw_heading)}</summary>'
                f'<pre class="raw" style="{_MONO};font-size:12px;line-height:17px;color:{INK};'
                f"background-color:{PANEL};padding:10px;margin:8px 0 0;white-space:pre-wrap;"
                f'{_WRAP}">{_e(_lines(view.raw_text))}</pre></details>\n'
            )
        )
    if view.footer:
        footer = "".join(
            f'<p style="{_FONT};font-size:12px;line-height:18px;color:{MUTED};margin:0 0 8px;'
            f'{_WRAP}">{_e(paragraph)}</p>'
            for paragraph in view.footer
        )
        sections.append(
            f'<tr><td class="footer" bgcolor="{PANEL}" style="background-color:{PANEL};'
            f'padding:16px 24px 12px;border-top:1px solid {RULE};{_WRAP}">{footer}</td></tr>\n'
        )
    return (
        "<!DOCTYPE html>\n"
        '<html><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="color-scheme" content="light">'
        '<meta name="supported-color-schemes" content="light">'
        f"<title>{_e(view.title)}</title></head>\n"
        f'<body bgcolor="{SURROUND}" style="margin:0;padding:0;background-color:{SURROUND}">\n'
        f'<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" '
        f'bgcolor="{SURROUND}" style="width:100%;background-color:{SURROUND}">'
        '<tr><td align="center" style="padding:16px 8px">\n'
        f'<table role="presentation" class="card" width="100%" cellpadding="0" cellspacing="0" '
        f'border="0" bgcolor="{CARD}" style="width:100%;max-width:{CARD_MAX_WIDTH_PX}px;'
        f"background-color:{CARD};border:1px solid {RULE};border-radius:8px;"
        f'border-top:6px solid {view.tone.fill}">\n'
        + "".join(sections)
        + "</table>\n</td></tr></table>\n</body></html>\n"
    )


# --- plain text ------------------------------------------------------------------------------


def text_bar(bar: Bar, width: int = TEXT_BAR_WIDTH) -> str:
    """``[##########|###-----------------]``: ``#`` filled, ``-`` the rest, ``|`` the mark."""
    filled = int((bar.filled * width).to_integral_value(ROUND_HALF_UP))
    cells = ["#"] * filled + ["-"] * (width - filled)
    marked = bar.marked
    if marked is not None:
        position = int((marked * width).to_integral_value(ROUND_HALF_UP))
        cells.insert(position, "|")
    return "[" + "".join(cells) + "]"


def _text_table(table: Table) -> list[str]:
    widths = [
        max(len(row[i]) if i < len(row) else 0 for row in (table.columns, *table.rows))
        for i in range(len(table.columns))
    ]
    lines = [table.title, "-" * len(table.title)]
    for row in (table.columns, *table.rows):
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[: len(widths)])]
        lines.append("  ".join(cells).rstrip())
    return lines


def render_text(view: EmailView) -> str:
    """The plain-text part of ``view``: the same facts, in words and a text bar."""
    lines = [view.heading, view.kicker, ""]
    if view.greeting:
        lines += [view.greeting, ""]
    lines.append(view.headline)
    if view.subline:
        lines.append(view.subline)
    lines += ["", view.summary, ""]
    if view.bar is not None:
        bar = view.bar
        lines.append(text_bar(bar))
        lines.append(f"  # {bar.value_label}")
        if bar.marker_label is not None:
            lines.append(f"  | {bar.marker_label}")
        lines.append(f"  - {bar.scale_label} (the whole bar)")
        lines.append("")
    for note in view.notes:
        lines += [f"NOTE: {note}", ""]
    for link in view.actions:
        lines.append(f"{link.text}: {link.url}")
    if view.actions:
        lines.append("")
    if view.rows:
        width = max(len(label) for label, _ in view.rows) + 2
        lines += [f"{label + ':':<{width}}{value}" for label, value in view.rows]
        lines.append("")
    for table in view.tables:
        lines += [*_text_table(table), ""]
    if view.raw_text is not None:
        lines += [f"--- {view.raw_heading} ---", _lines(view.raw_text), ""]
    if view.footer:
        lines += ["-- ", *view.footer, ""]
    return _lines("\n".join(lines)) + "\n"
