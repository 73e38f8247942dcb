"""The finance reports as a person reads them: text tables, CSV, JSON, and charts.

Both command lines use these on the proto responses: `loyalty report …` (over gRPC)
and `loyalty-server report …` (straight from the database). Charts need matplotlib,
the optional extra `charts` (`pip install 'loyalty-client[charts]'`).
"""

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from loyalty.client.tables import money, when
from loyalty.v1 import reporting_service_pb2 as pb

FORMATS = ("text", "csv", "json")
CHART_SUFFIXES = (".png", ".svg")


class ChartError(Exception):
    """A chart that cannot be drawn: no matplotlib, or a file type it does not write."""


def band_label(band: pb.ExpiryBand) -> str:
    if band.never_expires:
        return "never expire"
    if band.to_days == 0:
        return f"{band.from_days}+ days"
    return f"{band.from_days}–{band.to_days} days"


def _points(value: int) -> str:
    return f"{value:,}"


def _aligned(rows: Sequence[Sequence[str]], indent: str = "  ") -> str:
    """First column left, the others right-aligned (figures)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        figures = [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        cells = [row[0].ljust(widths[0]), *figures]
        lines.append(indent + "  ".join(cells).rstrip())
    return "\n".join(lines)


# ---- GetLiability ------------------------------------------------------------------------


def liability_rows(r: pb.GetLiabilityResponse) -> list[tuple[str, str, int, int]]:
    """(section, item, points, value_minor): every figure of the report, once."""
    value = r.point_value_minor
    rows = [
        ("total", "spendable", r.spendable_points, r.value_minor),
        ("total", "pending", r.pending_points, r.pending_value_minor),
        ("total", "held", r.held_points, r.held_value_minor),
        ("total", "debt", r.debt_points, r.debt_value_minor),
    ]
    rows += [("source", s, p, p * value) for s, p in sorted(r.by_source.items())]
    rows += [("expiry", band_label(b), b.points, b.value_minor) for b in r.expiry_bands]
    return rows


def liability_text(r: pb.GetLiabilityResponse, *, program_id: str) -> str:
    head = (
        f"Points liability of {program_id} at {when(r.as_of)}\n"
        f"  1 point = {money(r.point_value_minor, r.currency)}; "
        f"{r.customers:,} customers hold points, {r.customers_in_debt:,} owe points"
    )
    sections = {"total": "Totals", "source": "Spendable by source",
                "expiry": "Spendable by expiry (days from now)"}  # fmt: skip
    out = [head]
    for key, title in sections.items():
        rows = [(item, _points(p), money(v, r.currency))
                for section, item, p, v in liability_rows(r) if section == key]  # fmt: skip
        out += ["", title, _aligned([("", "points", "value"), *rows])]
    return "\n".join(out)


def liability_csv(r: pb.GetLiabilityResponse) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["section", "item", "points", "value_minor", "currency"])
    for section, item, points, value in liability_rows(r):
        writer.writerow([section, item, points, value, r.currency])
    return out.getvalue().rstrip("\n")


# ---- GetLiabilityRollForward -------------------------------------------------------------


def roll_forward_steps(r: pb.GetLiabilityRollForwardResponse) -> list[tuple[str, int, int]]:
    """(label, signed points, signed value_minor) from opening to closing."""
    value = r.point_value_minor
    steps = [("opening", r.opening_points, r.opening_value_minor)]
    steps += [(f"issued: {s}", p, p * value) for s, p in sorted(r.issued.items())]
    steps += [
        ("reinstated", r.reinstated_points, r.reinstated_value_minor),
        ("redeemed", -r.redeemed_points, -r.redeemed_value_minor),
        ("expired", -r.expired_points, -r.expired_value_minor),
        ("clawed back", -r.clawed_back_points, -r.clawed_back_value_minor),
        ("debt incurred", -r.debt_incurred_points, -r.debt_incurred_value_minor),
        ("closing", r.closing_points, r.closing_value_minor),
    ]
    return steps


def _signed(value: int, *, first_or_last: bool) -> str:
    return _points(value) if first_or_last or not value else f"{value:+,}"


def roll_forward_text(r: pb.GetLiabilityRollForwardResponse, *, program_id: str) -> str:
    steps = roll_forward_steps(r)
    rows = [("", "points", "value")]
    for i, (label, points, value) in enumerate(steps):
        edge = i in (0, len(steps) - 1)
        rows.append((label, _signed(points, first_or_last=edge), money(value, r.currency)))
    out = [
        f"Liability roll-forward of {program_id}, ({when(r.start_time)}, {when(r.end_time)}]",
        f"  opening and closing: spendable − debt; 1 point = "
        f"{money(r.point_value_minor, r.currency)}",
        "",
        _aligned(rows),
    ]
    if r.cohorts:
        cohort_rows = [("month", "issued", "redeemed", "expired", "outstanding", "value")]
        cohort_rows += [
            (c.month, _points(c.issued_points), _points(c.redeemed_points),
             _points(c.expired_points), _points(c.outstanding_points),
             money(c.outstanding_value_minor, r.currency))
            for c in r.cohorts
        ]  # fmt: skip
        out += ["", "Cohorts (month the points became spendable)", _aligned(cohort_rows)]
    return "\n".join(out)


def roll_forward_csv(r: pb.GetLiabilityRollForwardResponse) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["section", "item", "points", "value_minor", "currency"])
    for label, points, value in roll_forward_steps(r):
        writer.writerow(["roll-forward", label, points, value, r.currency])
    for c in r.cohorts:
        for item, points, value in (
            ("issued", c.issued_points, c.issued_value_minor),
            ("redeemed", c.redeemed_points, c.redeemed_value_minor),
            ("expired", c.expired_points, c.expired_value_minor),
            ("outstanding", c.outstanding_points, c.outstanding_value_minor),
        ):
            writer.writerow([f"cohort {c.month}", item, points, value, r.currency])
    return out.getvalue().rstrip("\n")


def as_json(message: Any) -> str:
    return str(
        json_format.MessageToJson(
            message, indent=2, ensure_ascii=False, always_print_fields_with_no_presence=True
        )
    )


def render(message: Any, *, fmt: str, program_id: str) -> str:
    """The report in `fmt` (text, csv or json)."""
    if fmt == "json":
        return as_json(message)
    liability = isinstance(message, pb.GetLiabilityResponse)
    if fmt == "csv":
        return liability_csv(message) if liability else roll_forward_csv(message)
    if liability:
        return liability_text(message, program_id=program_id)
    return roll_forward_text(message, program_id=program_id)


# ---- Charts ------------------------------------------------------------------------------


def _pyplot(path: Path) -> Any:
    if path.suffix.lower() not in CHART_SUFFIXES:
        raise ChartError(f"{path}: a chart is written as .png or .svg")
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only, no display
        import matplotlib.pyplot as plt
    except ImportError:
        raise ChartError("charts need matplotlib: pip install 'loyalty-client[charts]'") from None
    return plt


def chart(message: Any, path: Path, *, program_id: str) -> None:
    """Draw the report into `path` (PNG or SVG, by its suffix)."""
    plt = _pyplot(path)
    if isinstance(message, pb.GetLiabilityResponse):
        figure = _bands_figure(plt, message, program_id)
    else:
        figure = _waterfall_figure(plt, message, program_id)
    figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(figure)


def _bands_figure(plt: Any, r: pb.GetLiabilityResponse, program_id: str) -> Any:
    figure, axes = plt.subplots(figsize=(8, 4.5))
    labels = [band_label(b) for b in r.expiry_bands]
    points = [b.points for b in r.expiry_bands]
    colors = ["#c0392b", "#e67e22", "#f1c40f", "#27ae60", "#2980b9", "#7f8c8d"]
    bars = axes.bar(labels, points, color=colors[: len(points)])
    for bar, band in zip(bars, r.expiry_bands, strict=True):
        axes.annotate(
            f"{band.points:,}\n{money(band.value_minor, r.currency)}",
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center", va="bottom", fontsize=8,
        )  # fmt: skip
    axes.set_ylabel("spendable points")
    axes.set_title(
        f"{program_id}: {r.spendable_points:,} spendable points "
        f"({money(r.value_minor, r.currency)}) by expiry, at {when(r.as_of)}",
        fontsize=10,
    )
    axes.margins(y=0.2)
    return figure


def _waterfall_figure(plt: Any, r: pb.GetLiabilityRollForwardResponse, program_id: str) -> Any:
    steps = roll_forward_steps(r)
    figure, axes = plt.subplots(figsize=(9, 4.8))
    level, low, high = 0, 0, 0
    for i, (_label, points, _value) in enumerate(steps):
        edge = i in (0, len(steps) - 1)
        bottom, height = (0, points) if edge else (level, points)
        color = "#34495e" if edge else ("#27ae60" if points >= 0 else "#c0392b")
        axes.bar(i, height, bottom=bottom, color=color)
        top = max(bottom, bottom + height)
        axes.annotate(
            _signed(points, first_or_last=edge), (i, top), ha="center", va="bottom", fontsize=8
        )
        level = points if edge else level + points
        low, high = min(low, bottom, bottom + height), max(high, top)
    axes.set_ylim(low * 1.1, high * 1.12 or 1)
    axes.set_xticks(range(len(steps)), [label for label, _, _ in steps], rotation=30, ha="right")
    axes.set_ylabel("points (spendable − debt)")
    axes.set_title(
        f"{program_id}: liability roll-forward, {when(r.start_time)} to {when(r.end_time)}\n"
        f"closing {r.closing_points:,} points = {money(r.closing_value_minor, r.currency)}",
        fontsize=10,
    )
    return figure
