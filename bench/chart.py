"""The picture of a run (report.py `summary` writes it beside summary.md):
every case's ratio to its bare ceiling and to the Go peer, as horizontal
bars, from the run's own records; and, when callgrind ran, instructions per
request against the ceiling's, each with issue 17's goal marked on its
row. SVG written as text: no plotting library."""
from html import escape

from cases import GO_GOAL, IR_GOALS, PATHS, THROUGHPUT_GOALS, TWO_HOPS, bare_instructions
from summary import GROUPS

CONNS = 64
WIDTH = 900
LABEL_WIDTH = 330
BAR_HEIGHT = 13
ROW_GAP = 10
COLOURS = {"ceiling": "#3b6ea8", "go": "#d9822b", "instructions": "#6a4c93"}


def throughput_rows(res):
    """(label, ceiling, ratio to the ceiling, ratio to the Go peer, goal vs
    the ceiling) per case at 64 connections."""
    rows = []
    for group, (title, _) in GROUPS.items():
        for name in res.names(group):
            if CONNS not in res.conns(group):
                continue
            rps = res.median(group, "service", name, CONNS, "rps")
            bare = res.bare(group, name, CONNS, "rps")
            go = res.median(group, "go", name, CONNS, "rps")
            if rps is None:
                continue
            ceiling_name = "bare two-hop" if name in TWO_HOPS else GROUPS[group][1]
            rows.append((f"{PATHS[name]} · {title.split(' (')[0]}", ceiling_name,
                         rps / bare if bare else None, rps / go if go else None, THROUGHPUT_GOALS.get(name)))
    return rows


def instruction_rows(res):
    """(label, ceiling, service ÷ ceiling instructions per request, goal) per
    case measured."""
    rows = []
    for r in res.of("instructions"):
        if r["target"] not in ("service", "warn"):
            continue
        base = bare_instructions(res, r["name"])
        goal = IR_GOALS.get((r["target"], r["name"]))
        if base:
            logs = "logs off" if r["target"] == "warn" else "logs on"
            ceiling = goal[2] if goal else ("bare two-hop" if r["name"] in TWO_HOPS else "bare")
            rows.append((f"{PATHS.get(r['name'], r['name'])} · {logs}", ceiling, r["per_request"] / base,
                         goal[0] if goal else None))
    return rows


class Svg:
    def __init__(self):
        self.parts, self.y = [], 0

    def text(self, x, y, content, size=12, anchor="start", weight="normal", fill="#222"):
        self.parts.append(f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
                          f'font-weight="{weight}" fill="{fill}">{escape(content)}</text>')

    def line(self, x1, y1, x2, y2, stroke="#bbb", width=1, dash=None):
        dashes = f' stroke-dasharray="{dash}"' if dash else ""
        self.parts.append(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{stroke}" '
                          f'stroke-width="{width}"{dashes}/>')

    def rect(self, x, y, w, h, fill):
        self.parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0.5):.1f}" height="{h}" fill="{fill}"/>')

    def render(self):
        return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{self.y + 10}" '
                f'viewBox="0 0 {WIDTH} {self.y + 10}" font-family="sans-serif">\n'
                f'<rect width="100%" height="100%" fill="white"/>\n' + "\n".join(self.parts) + "\n</svg>\n")


def panel(svg, title, note, rows, series, marks, goals=()):
    """rows: (label, sublabel, value per series...); series: (name, colour);
    marks: ratios drawn as vertical lines (1.0 solid, goals dashed); goals:
    per row, the goal of its first series (a short dark tick), or None."""
    values = [v for row in rows for v in row[2:] if v is not None]
    top = max(values + [m for m, _ in marks] + [g for g in goals if g] + [1.0]) * 1.1
    plot_x, plot_w = LABEL_WIDTH, WIDTH - LABEL_WIDTH - 70
    scale = lambda v: plot_x + plot_w * v / top  # noqa: E731
    svg.y += 24
    svg.text(10, svg.y, title, size=15, weight="bold")
    svg.y += 18
    svg.text(10, svg.y, note, size=11, fill="#555")
    legend_x = 10
    svg.y += 18
    for name, colour in series:
        svg.rect(legend_x, svg.y - 10, 12, 12, colour)
        svg.text(legend_x + 16, svg.y, name, size=11)
        legend_x += 24 + 7 * len(name)
    svg.y += 10
    lines = max(len(series), 2 if any(row[1] for row in rows) else 1)  # a sublabel takes the second line
    row_height = lines * BAR_HEIGHT + ROW_GAP
    first = svg.y
    for index, (label, sublabel, *row) in enumerate(rows):
        goal = goals[index] if index < len(goals) else None
        svg.text(LABEL_WIDTH - 8, svg.y + BAR_HEIGHT, label, size=11, anchor="end")
        if sublabel:
            svg.text(LABEL_WIDTH - 8, svg.y + 2 * BAR_HEIGHT - 1, sublabel, size=9, anchor="end", fill="#777")
        for i, ((_, colour), value) in enumerate(zip(series, row)):
            y = svg.y + i * BAR_HEIGHT
            if value is None:
                continue
            svg.rect(plot_x, y + 1, scale(value) - plot_x, BAR_HEIGHT - 2, colour)
            end = max(scale(value), scale(goal) if goal and i == 0 else 0)  # the figure clear of the goal's tick
            svg.text(end + 4, y + BAR_HEIGHT - 2, f"{value:.2f}×", size=10)
        if goal:  # drawn over the bars
            svg.line(scale(goal), svg.y - 2, scale(goal), svg.y + BAR_HEIGHT + 2, stroke="#111", width=2.5)
        svg.y += row_height
    for mark, dash in marks:
        svg.line(scale(mark), first - 4, scale(mark), svg.y - ROW_GAP + 4, stroke="#444" if not dash else "#999", dash=dash)
        svg.text(scale(mark), svg.y + 4, f"{mark:g}×", size=10, anchor="middle", fill="#444")
    svg.y += 10


def chart(res):
    """The SVG text, or None when the run has nothing to draw."""
    throughput, ir = throughput_rows(res), instruction_rows(res)
    if not throughput and not ir:
        return None
    svg = Svg()
    if throughput:
        go = any(row[3] is not None for row in throughput)
        series = [("× its bare ceiling (req/s)", COLOURS["ceiling"])] + ([("× the Go peer (req/s)", COLOURS["go"])] if go else [])
        rows = [(label, f"ceiling: {ceiling}" + (f", goal ≥ {goal}×" if goal else ""), bare, *([vs_go] if go else []))
                for label, ceiling, bare, vs_go, goal in throughput]
        panel(svg, f"Throughput, {CONNS} connections: the service's req/s ÷ the other's (higher is better)",
              f"Medians of the run's repetitions, interleaved on one machine. Black tick: the goal vs the ceiling; "
              f"dashed: {GO_GOAL:g}× the Go peer.",
              rows, series, [(1.0, None), (GO_GOAL, "4 3")] if go else [(1.0, None)],
              [row[4] for row in throughput])
    if ir:
        panel(svg, "Instructions per request (callgrind): the service ÷ its bare ceiling (lower is better)",
              "User-space instructions, one connection; deterministic; two hops count both processes. Black tick: the goal.",
              [(label, f"ceiling: {ceiling}" + (f", goal ≤ {goal}×" if goal else ""), ratio) for label, ceiling, ratio, goal in ir],
              [("× the bare ceiling's instructions", COLOURS["instructions"])],
              [(1.0, None)], [row[3] for row in ir])
    return svg.render()
