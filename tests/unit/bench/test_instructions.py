"""`python -m bench.instructions`: reading callgrind's dumps, the table, the options."""

from pathlib import Path

import pytest

from bench.instructions import Count, dumped_instructions, main, table


def test_a_dump_counts_its_summary_line(tmp_path: Path) -> None:
    dump = tmp_path / "callgrind.service.41.1"
    header = "version: 1\ncreator: callgrind-3.19.0\nevents: Ir\n"
    dump.write_text(header + "fn=main\n0 7\ntotals: 123456\nsummary: 123456\n")
    assert dumped_instructions(dump) == 123_456


def test_a_dump_without_a_summary_counts_its_totals(tmp_path: Path) -> None:
    dump = tmp_path / "callgrind.echo.7.1"
    dump.write_text("events: Ir\ntotals: 900\n")
    assert dumped_instructions(dump) == 900
    empty = tmp_path / "empty"
    empty.write_text("events: Ir\n")
    with pytest.raises(ValueError, match="no summary"):
        dumped_instructions(empty)


def test_the_table_gives_millions_per_call_and_the_ratio_to_the_echo() -> None:
    counts = [
        Count("echo", "quote", 30, 30 * 400_000),
        Count("service", "quote", 30, 30 * 3_400_000),
    ]
    # 3,400,000 / 400,000 = 8.5 times the echo's instructions per call
    assert table(counts).splitlines()[2:] == [
        "| echo | quote | 30 | 0.400 M | 1.00 |",
        "| service | quote | 30 | 3.400 M | 8.50 |",
    ]


@pytest.mark.parametrize(
    ("workloads", "said"),
    [("quote,refund", "unknown workloads ['refund']"), ("reverse,apply", "list apply before it")],
)
def test_workloads_are_checked_before_anything_starts(
    workloads: str, said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main(["--workloads", workloads])
    assert said in capsys.readouterr().err
