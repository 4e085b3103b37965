"""The report of a benchmark run: ratios, targets met or not, the printed table, JSON, chart.

``results`` is the run's JSON-ready dict (see ``run.py``); ``add_ratios``
and ``targets`` add the derived figures to it, ``render`` makes the text
table, ``write_json`` and ``write_chart`` the files.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

Result = dict[str, Any]

COPY_PRICES = "pmstore copy_prices (columns)"
BASELINE = "server COPY FROM file (binary)"
CSV = "server COPY FROM file (CSV)"


def _by_name(scenario: Result | None) -> dict[str, Result]:
    if not scenario:
        return {}
    return {m["method"]: m for m in scenario.get("methods", []) if m.get("rows_per_s")}


def add_ratios(scenario: Result) -> None:
    """copy_prices against the server's binary and CSV COPY and the fastest Python peer."""
    methods = _by_name(scenario)
    ours = methods.get(COPY_PRICES)
    peers = [m for m in methods.values() if m["group"] == "peer"]
    fastest = max(peers, key=lambda m: m["rows_per_s"]) if peers else None
    ratios: Result = {}
    if ours:
        if BASELINE in methods:
            ratios["copy_prices_vs_server_binary"] = (
                ours["rows_per_s"] / methods[BASELINE]["rows_per_s"]
            )
        if CSV in methods:
            ratios["copy_prices_vs_server_csv"] = ours["rows_per_s"] / methods[CSV]["rows_per_s"]
        if fastest:
            ratios["copy_prices_vs_fastest_peer"] = ours["rows_per_s"] / fastest["rows_per_s"]
            ratios["fastest_peer"] = fastest["method"]
    scenario["ratios"] = ratios


def _target(
    name: str, measured: float | None, threshold: float, unit: str, at_least: bool, detail: str
) -> Result:
    met = (
        None if measured is None else (measured >= threshold if at_least else measured <= threshold)
    )
    return {
        "target": name,
        "measured": measured,
        "threshold": threshold,
        "unit": unit,
        "comparison": ">=" if at_least else "<=",
        "met": met,
        "detail": detail if measured is not None else "not measured in this run",
    }


TUPLES = "pmstore copy_prices (tuples)"
RECORDS = "pmstore copy_prices (records)"
WRITE_ROW = "psycopg Copy.write_row (binary)"
SORTED_BASELINE = "server COPY FROM file (binary, sorted by (token_id, ts))"
BOOK_BATCH = "pmstore copy_orderbooks (OrderbookBatch)"
BOOK_RAW = "pmstore copy_orderbooks (string levels)"
BOOK_TEXTS_BASELINE = "server COPY FROM file (binary, Polymarket's decimal texts)"
"""The server's binary COPY of the books whose sides hold Polymarket's own strings: the rows
the Writer stores from string levels (the floats' rows store ``1000.0`` for ``"1000"``)."""

RATIO_TARGETS: tuple[tuple[str, str, str, str, float], ...] = (
    ("(a) full schema: copy_prices (columns)", "prices_full", COPY_PRICES, SORTED_BASELINE, 0.9),
    ("(b) bare hypertable: copy_prices (columns)", "prices_noindex", COPY_PRICES, BASELINE, 0.9),
    ("(c) bare hypertable: copy_prices from tuples", "prices_noindex", TUPLES, BASELINE, 0.6),
    ("(c) bare hypertable: copy_prices from records", "prices_noindex", RECORDS, BASELINE, 0.6),
    ("(c) full schema: copy_prices from tuples", "prices_full", TUPLES, WRITE_ROW, 1.2),
    ("(c) full schema: copy_prices from records", "prices_full", RECORDS, WRITE_ROW, 1.2),
    (
        "(d) order books: from a built OrderbookBatch",
        "orderbooks",
        BOOK_BATCH,
        BASELINE,
        0.9,
    ),
    (
        "(d) order books: from Polymarket string levels",
        "orderbooks",
        BOOK_RAW,
        BOOK_TEXTS_BASELINE,
        0.6,
    ),
)
"""Issue 11's ratio targets: (name, scenario, method, baseline method, at least this ratio)."""


def targets(results: Result) -> list[Result]:
    """The issue's targets, each met, not met, or not measured (None).

    Ratio targets also annotate their method's entry (``targets``: goal,
    baseline, ratio, verdict), which the scenario tables print.
    """
    scenarios = results["scenarios"]
    day = scenarios.get("day")
    rss = scenarios.get("rss")
    out = []
    for name, key, method, baseline, threshold in RATIO_TARGETS:
        methods = _by_name(scenarios.get(key))
        ours, base = methods.get(method), methods.get(baseline)
        ratio = ours["rows_per_s"] / base["rows_per_s"] if ours and base else None
        target = _target(
            f"{name} vs {baseline}",
            ratio,
            threshold,
            "x",
            True,
            f"{ours['rows_per_s']:,.0f} vs {base['rows_per_s']:,.0f} rows/s, same rows, "
            "same emptied table, same run"
            if ours and base
            else "",
        )
        target["baseline"] = baseline
        target["baseline_rows_per_s"] = base["rows_per_s"] if base else None
        target["method"] = method
        target["rows_per_s"] = ours["rows_per_s"] if ours else None
        out.append(target)
        if ours:
            verdict = {True: "MET", False: "NOT MET", None: "-"}[target["met"]]
            ours.setdefault("targets", []).append(
                f"(target {name[:3]}) {ratio or 0:.2f}x of '{baseline}', goal >= {threshold:g}x: "
                f"{verdict}"
            )
    out += [
        _target(
            "(e) planned day: simulated time / ingest wall time",
            day["realtime_ratio"] if day else None,
            1000.0,
            "x",
            True,
            f"{day['minutes']} minutes of {day['tokens']:,} tokens" if day else "",
        ),
        _target(
            "(e) planned day: p99 latency of a minute batch",
            day["batch_p99_ms"] if day else None,
            150.0,
            "ms",
            False,
            f"{day['minutes']} batches of {day['tokens']:,} rows" if day else "",
        ),
        _target(
            "(f) peak RSS growth, 1M rows in 10k-row batches via copy_prices",
            rss["growth_mb"] if rss else None,
            150.0,
            "MB",
            False,
            f"{rss['rows']:,} rows in {rss['batches']} batches; "
            f"baseline {rss['rss_after_imports_mb']:.0f} MB"
            if rss
            else "",
        ),
    ]
    if results["args"].get("smoke"):
        for t in out:
            t["detail"] += " (smoke sizes: not meaningful)"
    return out


# -- the text table ----------------------------------------------------------------------------


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _table(header: list[str], rows: list[list[str]], align: str) -> list[str]:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)
    ]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if a == "<" else c.rjust(w)
            for c, w, a in zip(cells, widths, align, strict=True)
        ).rstrip()

    return [line(header), line(["-" * w for w in widths]), *map(line, rows)]


def _methods(
    scenario: Result, extra: tuple[str, Callable[[Result], str]] | None = None
) -> list[str]:
    header = ["method", "rows", "rows/s", "seconds", "vs baseline"]
    if extra:
        header.append(extra[0])
    header.append("note")
    rows = []
    for m in scenario["methods"]:
        if m.get("skipped"):
            row = (
                [m["method"], "-", "skipped", "-", "-"] + (["-"] if extra else []) + [m["skipped"]]
            )
        else:
            row = [
                m["method"],
                f"{m['rows']:,}",
                _rate(m["rows_per_s"]),
                f"{m['seconds']:.2f}",
                f"{m.get('vs_baseline', 0):.2f}x",
            ]
            if extra:
                row.append(extra[1](m))
            row.append(m.get("note", ""))
        rows.append(row)
    lines = _table(header, rows, "<>>>>" + (">" if extra else "") + "<")
    baseline = scenario["methods"][0]["method"] if scenario["methods"] else "-"
    lines.append(f"   baseline (1.00x): {baseline}")
    for m in scenario["methods"]:
        lines += [f"   {m['method']}: {t}" for t in m.get("targets", [])]
    return lines


def _waves(day: Result) -> str:
    w = day["split_waves"]
    if not w["batches"]:
        return (
            f"   no index page-split wave (>= {w['threshold_pages']:,} new index pages in a batch)"
        )
    return (
        f"   index page-split waves (>= {w['threshold_pages']:,} new index pages in one batch, "
        f"{w['mean_pages']:,.0f} on average): {len(w['batches'])} batches, at minutes "
        f"{', '.join(map(str, w['batches'][:8]))}{', ...' if len(w['batches']) > 8 else ''}; "
        f"{w['mean_ms']:.0f} ms a batch vs {w['mean_ms_other']:.0f} ms otherwise; "
        f"{w['slowest_in_waves']} of the {len(w['slowest_batches'])} batches at or above p99"
    )


def render(results: Result) -> str:
    """The whole report as text."""
    out: list[str] = []
    meta, server = results["machine"], results["server"]
    out += [
        f"pmstore ingest benchmarks, {results['started_at']}"
        + ("  [SMOKE: tiny sizes, figures not meaningful]" if results["args"].get("smoke") else ""),
        f"machine: {meta['cpu_model']}, {meta['logical_cores']} cores, "
        f"{meta['memory_gib']:.1f} GiB; load average at start {meta['loadavg_start'][0]:.2f}, "
        f"at end {meta.get('loadavg_end', [0])[0]:.2f}; pmstore {meta.get('pmstore_commit')}",
        f"server:  {server['description']} via {server['source']}",
        f"settings: {server['note']}",
        "         " + ", ".join(f"{k}={v}" for k, v in server["settings"].items()),
        f"server-side COPY FROM file: {server['server_reads_files_note']}",
        "",
    ]
    sc = results["scenarios"]
    if "encode" in sc:
        s = sc["encode"]
        out += [f"== {s['title']}", f"   prices: {s['prices']}; books: {s['books']}"]
        rows = [
            [
                i["name"],
                f"{i['rows']:,}",
                _rate(i["rows_per_s"]),
                f"{i['seconds'] * 1000:.1f}",
                f"{i['mib_per_s']:.0f}" if "mib_per_s" in i else "-",
            ]
            for i in s["items"]
        ]
        out += [*_table(["step (best of 3)", "rows", "rows/s", "ms", "MiB/s"], rows, "<>>>>"), ""]
    for key in ("prices_full", "prices_noindex"):
        if key in sc:
            s = sc[key]
            out += [f"== {s['title']}", f"   table {s['table']}; data: {s['data']}"]
            out += _methods(s)
            r = s.get("ratios", {})
            if r:
                parts = []
                if "copy_prices_vs_server_binary" in r:
                    parts.append(f"{r['copy_prices_vs_server_binary']:.2f}x server binary COPY")
                if "copy_prices_vs_server_csv" in r:
                    parts.append(f"{r['copy_prices_vs_server_csv']:.2f}x server CSV COPY")
                if "copy_prices_vs_fastest_peer" in r:
                    parts.append(
                        f"{r['copy_prices_vs_fastest_peer']:.2f}x "
                        f"the fastest peer ({r['fastest_peer']})"
                    )
                out.append("   copy_prices (columns) = " + ", ".join(parts))
            out.append("")
    if "orderbooks" in sc:
        s = sc["orderbooks"]
        out += [f"== {s['title']}", f"   data: {s['data']}"]
        out += [*_methods(s, ("levels/s", lambda m: _rate(m.get("levels_per_s")))), ""]
    if "trades" in sc:
        s = sc["trades"]
        out += [
            f"== {s['title']}",
            f"   {s['rows']:,} rows in {s['batches']} batches of {s['batch_rows']:,}: "
            f"{_rate(s['rows_per_s'])} rows/s; {s['rows_inserted']:,} inserted, "
            f"{s['duplicates_skipped']:,} duplicates skipped (checked against the table); "
            f"batch p50 {s['batch_p50_ms']:.1f} ms, p99 {s['batch_p99_ms']:.1f} ms",
            "",
        ]
    if "day" in sc:
        s = sc["day"]
        out += [
            f"== {s['title']}",
            f"   {s['rows']:,} rows in {s['seconds']:.1f} s of copy_prices "
            f"({s['elapsed_with_generation_s']:.1f} s in all, with data generation): "
            f"{_rate(s['rows_per_s'])} rows/s, {s['realtime_ratio']:,.0f}x real time",
            f"   batch p50 {s['batch_p50_ms']:.1f} ms, p99 {s['batch_p99_ms']:.1f} ms, "
            f"max {s['batch_max_ms']:.1f} ms",
            f"   chunk at the end: heap {s['heap_bytes'] / 2**20:,.0f} MiB, "
            f"indexes {s['index_bytes'] / 2**20:,.0f} MiB",
            "   rows/s by tenth of the run: "
            + ", ".join(_rate(d["rows_per_s"]) for d in s["deciles"]),
            _waves(s),
            "",
        ]
    if "rss" in sc:
        s = sc["rss"]
        out += [
            f"== {s['title']}",
            f"   RSS after imports {s['rss_after_imports_mb']:.0f} MB, "
            f"before the loop {s['rss_before_loop_mb']:.0f} MB, "
            f"peak sampled {s['rss_peak_sampled_mb']:.0f} MB, "
            f"kernel high-water mark {s['vm_hwm_mb']:.0f} MB: "
            f"growth {s['growth_mb']:.1f} MB",
            "",
        ]
    if results.get("targets"):
        out.append("== Targets")
        rows = []
        for t in results["targets"]:
            measured = "-" if t["measured"] is None else f"{t['measured']:,.2f}{t['unit']}"
            verdict = {True: "MET", False: "NOT MET", None: "not measured"}[t["met"]]
            rows.append(
                [
                    t["target"],
                    _rate(t.get("rows_per_s")) if "method" in t else "",
                    _rate(t.get("baseline_rows_per_s")) if "method" in t else "",
                    measured,
                    f"{t['comparison']} {t['threshold']:g}{t['unit']}",
                    verdict,
                    t["detail"],
                ]
            )
        header = ["target", "rows/s", "baseline rows/s", "measured", "goal", "verdict", "detail"]
        out += [*_table(header, rows, "<>>>><<"), ""]
    out.append(
        "peak RSS of this benchmark process (it holds every generated data set): "
        f"{results['peak_rss_mb']:.0f} MB"
    )
    return "\n".join(out)


def _plain(value: Any) -> Any:
    item = getattr(value, "item", None)
    if callable(item):
        return item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_json(results: Result, path: Path) -> None:
    path.write_text(json.dumps(results, indent=1, default=_plain) + "\n")


def write_chart(results: Result, path: Path) -> bool:
    """Rows/s per method (prices, books), the day's batch latency; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    sc = results["scenarios"]
    panels = [k for k in ("prices_full", "prices_noindex", "orderbooks") if k in sc] + (
        ["day"] if "day" in sc else []
    )
    if not panels:
        return False
    from matplotlib.ticker import FuncFormatter

    thousands = FuncFormatter(lambda x, _pos: f"{x:,.0f}")
    fig, axes = plt.subplots(len(panels), 1, figsize=(11, 3.6 * len(panels)), squeeze=False)
    for ax, key in zip(axes[:, 0], panels, strict=True):
        s = sc.get(key, {})
        if key == "day":
            lat = s["latencies_ms"]
            ax.plot(
                range(len(lat)),
                lat,
                lw=0.8,
                color="tab:blue",
                label="copy_prices latency per minute batch",
            )
            waves = s.get("split_waves", {}).get("batches", [])
            if waves:
                ax.scatter(
                    waves,
                    [lat[i] for i in waves],
                    s=12,
                    color="tab:red",
                    zorder=3,
                    label="batches with an index page-split wave",
                )
            ax.axhline(
                s["batch_p50_ms"],
                color="tab:green",
                ls="--",
                lw=0.8,
                label=f"p50 {s['batch_p50_ms']:.0f} ms",
            )
            ax.axhline(
                s["batch_p99_ms"],
                color="tab:red",
                ls="--",
                lw=0.8,
                label=f"p99 {s['batch_p99_ms']:.0f} ms",
            )
            ax.set_xlabel("simulated minute")
            ax.set_ylabel("ms per batch")
            ax.set_title(f"{s['title']} ({s['realtime_ratio']:,.0f}x real time)", fontsize=9)
            ax.legend(fontsize=8, loc="upper left")
            continue
        methods = s["methods"]  # every loader; a skipped one shows as "skipped"
        names = [m["method"] for m in methods][::-1]
        rates = [m.get("rows_per_s") or 0.0 for m in methods][::-1]
        ratios = [m.get("vs_baseline") for m in methods][::-1]
        colors = {"pmstore": "tab:blue", "server": "tab:gray", "peer": "tab:orange"}
        ax.barh(names, rates, color=[colors[m["group"]] for m in methods][::-1])
        for y, (rate, ratio) in enumerate(zip(rates, ratios, strict=True)):
            label = f" {rate:,.0f} ({ratio:.2f}x)" if rate and ratio else " skipped"
            ax.text(rate, y, label, va="center", fontsize=7)
        ax.set_xlabel("rows/s")
        ax.set_xlim(0, max(rates, default=1) * 1.15)
        ax.xaxis.set_major_formatter(thousands)
        ax.set_title(s["title"], fontsize=9)
        ax.tick_params(axis="y", labelsize=8)
    fig.suptitle(
        f"pmstore ingest, {results['server']['description']}, "
        f"{results['machine']['logical_cores']} cores",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
