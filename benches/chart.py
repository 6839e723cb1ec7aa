#!/usr/bin/env python3
"""Draws the yardstick comparison as an SVG bar chart.

usage: python3 benches/chart.py RESULTS.jsonl OUT.svg [BASELINE]

RESULTS.jsonl is what ../shared/yardstick/scripts/compare.sh writes. For each scenario
metric below, the chart shows every server's median over the rounds as a ratio to the
baseline server's median (echo-tokio unless named), so 1.0 means "as good as raw tokio"
and taller is better for every bar (lower-is-better metrics are inverted). The median
itself is printed under each bar.
"""
import json
import statistics
import sys

METRICS = [  # (scenario, key, label, higher_is_better, unit)
    ("latency", "lat_us_p50", "latency p50", False, "µs"),
    ("latency", "lat_us_p99", "latency p99", False, "µs"),
    ("throughput", "frames_per_s", "throughput", True, "frames/s"),
    ("bulk", "mb_per_s_in", "bulk", True, "MB/s"),
    ("bulk", "lat_us_p99", "bulk p99", False, "µs"),
    ("idle", "server_rss_per_conn_bytes", "idle memory", False, "B/conn"),
]
COLORS = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2"]


def medians(path):
    runs = {}
    with open(path) as f:
        for line in f:
            row = json.loads(line)
            if row.get("result") is None:
                continue
            for (scenario, key, *_rest) in METRICS:
                if row["scenario"] == scenario and key in row["result"]:
                    runs.setdefault((row["server"], scenario, key), []).append(row["result"][key])
    return {k: statistics.median(v) for k, v in runs.items()}


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    path, out = sys.argv[1], sys.argv[2]
    baseline = sys.argv[3] if len(sys.argv) > 3 else "echo-tokio"
    med = medians(path)
    servers = []
    for (server, _, _) in med:
        if server not in servers:
            servers.append(server)
    servers.sort(key=lambda s: (s != baseline, s))

    bar_w, gap, group_gap, top, height = 26, 4, 34, 40, 220
    group_w = len(servers) * (bar_w + gap) + group_gap
    width = 60 + group_w * len(METRICS)
    scale = height / 1.6  # a ratio of 1.6 fills the plot
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{top + height + 90}" '
        'font-family="sans-serif" font-size="11">',
        f'<text x="10" y="20" font-size="14">Echo servers vs {baseline} (ratio of medians; higher is better)</text>',
    ]
    base_y = top + height
    one_y = base_y - scale
    parts.append(f'<line x1="50" x2="{width - 10}" y1="{one_y:.1f}" y2="{one_y:.1f}" stroke="#999" stroke-dasharray="4 3"/>')
    parts.append(f'<text x="10" y="{one_y + 4:.1f}">1.0×</text>')
    for g, (scenario, key, label, higher, unit) in enumerate(METRICS):
        x0 = 60 + g * group_w
        base = med.get((baseline, scenario, key))
        for i, server in enumerate(servers):
            value = med.get((server, scenario, key))
            if value is None or not base:
                continue
            ratio = value / base if higher else base / value
            h = min(ratio, 1.6) * scale
            x = x0 + i * (bar_w + gap)
            parts.append(f'<rect x="{x}" y="{base_y - h:.1f}" width="{bar_w}" height="{h:.1f}" fill="{COLORS[i % len(COLORS)]}"/>')
            parts.append(f'<text x="{x + bar_w / 2}" y="{base_y - h - 4:.1f}" text-anchor="middle">{ratio:.2f}</text>')
            shown = f"{value / 1e6:.2f}M" if value >= 1e6 else f"{value:,.0f}"
            parts.append(
                f'<text x="{x + bar_w / 2}" y="{base_y + 14 + 12 * (i % 2)}" text-anchor="middle" font-size="9">{shown}</text>'
            )
        parts.append(f'<text x="{x0 + (group_w - group_gap) / 2}" y="{base_y + 44}" text-anchor="middle">{label}</text>')
        parts.append(f'<text x="{x0 + (group_w - group_gap) / 2}" y="{base_y + 57}" text-anchor="middle" fill="#666">{unit}</text>')
    for i, server in enumerate(servers):
        x = 60 + i * 120
        parts.append(f'<rect x="{x}" y="{base_y + 70}" width="12" height="12" fill="{COLORS[i % len(COLORS)]}"/>')
        parts.append(f'<text x="{x + 16}" y="{base_y + 80}">{server}</text>')
    parts.append("</svg>")
    with open(out, "w") as f:
        f.write("\n".join(parts) + "\n")


if __name__ == "__main__":
    main()
