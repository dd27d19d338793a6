"""Server-rendered SVG bar charts: no script and no network, and they print.

Each chart is a stacked bar per day, one colour per series, with a legend and a text title
and description for screen readers; the numbers are also given as a table beside it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from markupsafe import Markup, escape

#: Colour-blind-safe palette (Okabe–Ito), in order of use.
COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 720, 240, 40, 40, 10


def bars(title: str, days: Sequence[str], series: Mapping[str, Sequence[int]]) -> Markup:
    """A stacked bar chart of ``series`` (name → one count per day)."""
    totals = [sum(s[i] for s in series.values()) for i in range(len(days))]
    peak = max([*totals, 1])
    plot_h = HEIGHT - BOTTOM - TOP
    step = (WIDTH - LEFT - 10) / max(len(days), 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 {WIDTH} '
        f'{HEIGHT + 20 * ((len(series) + 3) // 4)}" class="chart">',
        f"<title>{escape(title)}</title>",
        f"<desc>{escape(title)}: {sum(totals)} in all over {len(days)} days, "
        f"at most {max(totals, default=0)} in a day</desc>",
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - 10}" y2="{TOP + plot_h}" '
        'stroke="#505a5f"/>',
        f'<text x="{LEFT - 4}" y="{TOP + 10}" text-anchor="end" font-size="11">{peak}</text>',
        f'<text x="{LEFT - 4}" y="{TOP + plot_h}" text-anchor="end" font-size="11">0</text>',
    ]
    for i, day in enumerate(days):
        x = LEFT + i * step
        y = float(TOP + plot_h)
        for n, (name, counts) in enumerate(series.items()):
            h = counts[i] / peak * plot_h
            if counts[i]:
                y -= h
                parts.append(
                    f'<rect x="{x + 1:.1f}" y="{y:.1f}" width="{max(step - 2, 1):.1f}" '
                    f'height="{h:.1f}" fill="{COLOURS[n % len(COLOURS)]}">'
                    f"<title>{escape(day)} {escape(name)}: {counts[i]}</title></rect>"
                )
        if i % max(len(days) // 7, 1) == 0:
            parts.append(
                f'<text x="{x + step / 2:.1f}" y="{TOP + plot_h + 14}" text-anchor="middle" '
                f'font-size="11">{escape(day[5:])}</text>'
            )
    for n, name in enumerate(series):
        lx, ly = LEFT + (n % 4) * 170, HEIGHT + 20 * (n // 4) - 6
        parts.append(
            f'<rect x="{lx}" y="{ly - 10}" width="12" height="12" '
            f'fill="{COLOURS[n % len(COLOURS)]}"/>'
            f'<text x="{lx + 16}" y="{ly}" font-size="12">{escape(name)}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))
