"""results.json → a Markdown report: the table, the ratios to the baselines, the targets."""

from typing import Any

Row = dict[str, Any]

_HEADER = (
    "| target | workers | workload | conc. | req/s | p50 ms | p90 ms | p99 ms "
    "| server CPU ms/req | PostgreSQL CPU ms/req: database + shared | generator CPU ms/req (cores) "
    "| errors |\n"
    "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"
)


def _row(c: Row) -> str:
    errors = ", ".join(f"{k} {v}" for k, v in sorted(c["errors"].items())) or ""
    target = c["target"] + (f" (beside {c['beside']})" if c.get("beside") else "")
    return (
        f"| {target} | {c['workers'] or '–'} | {c['workload']} | {c['concurrency']} "
        f"| {c['rps']:,.0f} | {c['p50_ms']:.2f} | {c['p90_ms']:.2f} | {c['p99_ms']:.2f} "
        f"| {c['server_cpu_ms']:.3f} | {c['db_cpu_ms']:.3f} + {c.get('db_shared_cpu_ms', 0):.3f} "
        f"| {c['gen_cpu_ms']:.3f} ({c['gen_cores']:.2f}) | {errors} |"
    )


def table(cells: list[Row]) -> str:
    return "\n".join([_HEADER, *(_row(c) for c in cells)])


def _find(cells: list[Row], **want: Any) -> Row | None:
    return next((c for c in cells if all(c.get(k) == v for k, v in want.items())), None)


def targets(
    cells: list[Row], texts_us: dict[str, float] | None = None
) -> list[tuple[str, str, bool | None]]:
    """(what, measured, met) for each target of issue 14 that this run has the cells for.

    `texts_us`: per target, what the texts add to one quote's answer (bench/inprocess.py).
    """
    out: list[tuple[str, str, bool | None]] = []
    for backend in ("sqlite", "postgres"):
        # Each ratio uses the baseline cell measured right before the cell it is compared with.
        beside = f"{backend} 1w quote"
        echo8 = _find(cells, target="echo", concurrency=8, beside=beside)
        echo1 = _find(cells, target="echo", concurrency=1, beside=beside)
        q8 = _find(cells, target=backend, workers=1, workload="quote", concurrency=8)
        if q8 and echo8:
            ratio = q8["rps"] / echo8["rps"]
            out.append(
                (f"{backend} quote c8 ≥ 0.35 × echo's req/s", f"{ratio:.2f} ×", ratio >= 0.35)
            )
        q1 = _find(cells, target=backend, workers=1, workload="quote", concurrency=1)
        if q1 and echo1:
            ratio = q1["p50_ms"] / echo1["p50_ms"]
            out.append(
                (f"{backend} quote c1 p50 ≤ 2.5 × echo's p50", f"{ratio:.2f} ×", ratio <= 2.5)
            )
    out += _explanation_cost(cells)
    out += _texts_share(cells, texts_us or {})
    out += _against_bare(cells)
    out += _cpu_per_request(cells)
    scales = sorted({c["target"] for c in cells if c["target"].startswith("postgres-")},
                    key=lambda t: int(t.split("-")[1]))  # fmt: skip
    if len(scales) >= 2:
        small, large = scales[0], scales[-1]
        for workload in ("quote", "apply"):
            for c in sorted({c["concurrency"] for c in cells if c["target"] == small}):
                a = _find(cells, target=small, workload=workload, concurrency=c)
                b = _find(cells, target=large, workload=workload, concurrency=c)
                if a and b and a["p50_ms"]:
                    ratio = b["p50_ms"] / a["p50_ms"]
                    out.append(
                        (
                            f"{workload} c{c} p50 {large} / {small} ≤ 1.3",
                            f"{ratio:.2f}",
                            ratio <= 1.3,
                        )
                    )
    return out


def _against_bare(cells: list[Row]) -> list[tuple[str, str, bool | None]]:
    """Applies and returns at c16 next to the bare psycopg transaction measured beside them."""
    out: list[tuple[str, str, bool | None]] = []
    for workers in (1, 2):
        bare = _find(cells, target="psycopg", concurrency=16, beside=f"postgres {workers}w apply")
        a16 = _find(cells, target="postgres", workers=workers, workload="apply", concurrency=16)
        r16 = _find(cells, target="postgres", workers=workers, workload="reverse", concurrency=16)
        if a16:
            p99 = a16["p99_ms"]
            out.append((f"postgres apply c16 ({workers}w) p99 ≤ 40 ms", f"{p99:.1f} ms", p99 <= 40))
        for cell, name, floor in ((a16, "apply", 0.65), (r16, "reverse", 0.5)):
            if cell and bare and bare["rps"]:
                ratio = cell["rps"] / bare["rps"]
                out.append(
                    (
                        f"postgres {name} c16 ({workers}w) ≥ {floor} × bare psycopg's tx/s",
                        f"{ratio:.2f} ×",
                        ratio >= floor,
                    )
                )
    return out


def _cpu_per_request(cells: list[Row]) -> list[tuple[str, str, bool | None]]:
    """Server CPU per quote (c8) and per apply (c16), PostgreSQL's per apply (1 worker)."""
    out: list[tuple[str, str, bool | None]] = []
    q8 = _find(cells, target="postgres", workers=1, workload="quote", concurrency=8)
    a16 = _find(cells, target="postgres", workers=1, workload="apply", concurrency=16)
    for cell, what, key, bound in (
        (q8, "server CPU per quote (c8)", "server_cpu_ms", 0.55),
        (a16, "server CPU per apply (c16)", "server_cpu_ms", 1.1),
        (a16, "PostgreSQL CPU per apply (c16)", "db_cpu_ms", 0.8),
    ):
        if cell:
            out.append((f"postgres {what} ≤ {bound} ms", f"{cell[key]:.3f} ms", cell[key] <= bound))
    return out


def _texts_share(
    cells: list[Row], texts_us: dict[str, float]
) -> list[tuple[str, str, bool | None]]:
    """The texts' own µs (measured alone, so the machine's drift between two servers' cells
    does not enter) against the server CPU of one quote at c8 (docs/rules.md §10)."""
    out: list[tuple[str, str, bool | None]] = []
    for target, us in sorted(texts_us.items()):
        q8 = _find(cells, target=target, workers=1, workload="quote", concurrency=8)
        if q8 and q8["server_cpu_ms"]:
            share = us / 1000 / q8["server_cpu_ms"]
            out.append(
                (
                    f"{target} quote c8: the texts ({us:.1f} µs, built alone) ≤ 10 % of the "
                    f"server CPU per quote ({q8['server_cpu_ms']:.3f} ms)",
                    f"{share:.1%}",
                    share <= 0.10,
                )
            )
    return out


def _explanation_cost(cells: list[Row]) -> list[tuple[str, str, bool | None]]:
    """Server CPU of a quote with explanations over the same quote without (docs/rules.md §10)."""
    out: list[tuple[str, str, bool | None]] = []
    for plain in (c for c in cells if c["workload"] == "quote-plain"):
        quote = _find(
            cells, target=plain["target"], workers=plain["workers"], workload="quote",
            concurrency=plain["concurrency"],
        )  # fmt: skip
        if quote and plain["server_cpu_ms"]:
            extra = quote["server_cpu_ms"] / plain["server_cpu_ms"] - 1
            out.append(
                (
                    f"{plain['target']} {plain['workers']}w quote c{plain['concurrency']}: "
                    f"explanations ≤ 10 % of server CPU ({quote['server_cpu_ms']:.3f} vs "
                    f"{plain['server_cpu_ms']:.3f} ms)",
                    f"{extra:+.1%}",
                    extra <= 0.10,
                )
            )
    return out


def capacity(cells: list[Row]) -> list[tuple[str, float, float, float, float, float]]:
    """(cell, req/s, PostgreSQL CPU ms/req of the database's own backends, of the shared
    background, requests per PostgreSQL core-second, requests per service core-second)
    for every cell of the service on PostgreSQL.

    A core-second of PostgreSQL carries 1,000 / (its backends' CPU ms per request)
    requests. The backends write and flush their own WAL at commit, so that counts the
    writes; the shared background (WAL writer, checkpointer) is shown beside it and not
    counted, because on a shared server it also works for every other database's load.
    """
    out = []
    for c in cells:
        db_ms = c["db_cpu_ms"]
        if not c["target"].startswith("postgres") or db_ms <= 0:
            continue
        server_ms = c["server_cpu_ms"]
        label = f"{c['target']} {c['workload']} c{c['concurrency']} ({c['workers']}w)"
        per_service_core = 1000 / server_ms if server_ms > 0 else 0.0
        shared = c.get("db_shared_cpu_ms", 0.0)
        out.append((label, c["rps"], db_ms, shared, 1000 / db_ms, per_service_core))
    return out


def explain_summary(explain: dict[str, list[Row]]) -> str:
    lines = []
    for label, items in explain.items():
        lines.append(
            f"\n**{label}** — statements of one quote and one apply, as EXPLAIN ANALYZE saw them:\n"
        )
        lines.append("| call | statement | plan nodes | ms |\n|---|---|---|---:|")
        for item in items:
            stmt = item["statement"][:90].replace("|", "\\|")
            nodes = "; ".join(item["nodes"][:4]).replace("|", "\\|")
            lines.append(f"| {item['phase']} | `{stmt}` | {nodes} | {item['execution_ms']:.3f} |")
    return "\n".join(lines)


def markdown(data: dict[str, Any]) -> str:
    meta = data["meta"]
    parts = [
        f"# Benchmark {meta['started']}",
        "",
        f"`{meta['command']}` on {meta['machine']}; program `{meta['program']}`, "
        f"20-line carts, accounts of 20 buckets; {meta['duration']} s per cell after "
        f"{meta['warmup']} s of warm-up; load from at most {meta['clients']} generator processes.",
        "",
        table(data["cells"]),
        "",
        "## Targets (issue 14)",
        "",
        "| target | measured | met |",
        "|---|---:|---|",
    ]
    for what, measured, met in targets(data["cells"], data.get("texts")):
        parts.append(f"| {what} | {measured} | {'yes' if met else 'NO'} |")
    rows = capacity(data["cells"])
    if rows:
        parts += [
            "",
            "## What one core carries (docs/scale.md)",
            "",
            "| cell | req/s | PostgreSQL CPU ms/req: database (+ shared, not counted) "
            "| req/s per PostgreSQL core | service CPU ms/req | req/s per service core |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for label, rps, db_ms, shared, per_db_core, per_service_core in rows:
            service_ms = 1000 / per_service_core if per_service_core else 0.0
            parts.append(
                f"| {label} | {rps:,.0f} | {db_ms:.3f} (+ {shared:.3f}) | {per_db_core:,.0f} "
                f"| {service_ms:.3f} | {per_service_core:,.0f} |"
            )
    if data.get("explain"):
        parts += ["", "## Hot queries at scale", explain_summary(data["explain"])]
    return "\n".join(parts) + "\n"
