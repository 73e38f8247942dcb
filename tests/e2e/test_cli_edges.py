"""The CLI's rough edges a newcomer hit: replays, get-redemption, capture, help, typos, stdin."""

import io

import pytest

from loyalty.client.cli import REPLAYED, build_parser, main
from tests.e2e.builders import new_id
from tests.e2e.test_cli import (
    CARTS,
    T0,
    Run,
    loyalty,  # noqa: F401  (the fixture)
)
from tests.support.server import ServerProcess

TWO_DRILLS = (CARTS / "two-drills.json").read_text()


def test_a_repeated_grant_says_replayed_and_shows_the_first_answer(
    loyalty,  # type: ignore[no-untyped-def]  # noqa: F811  (the fixture)
) -> None:
    customer, key = new_id("c"), new_id("grant")
    grant = ("grant", "--program", "stomatorg", "--customer", customer, "--points", "500",
             "--source", "loyalty", "--request-id", key)  # fmt: skip
    first = loyalty(*grant)
    assert first.code == 0, first.err
    assert "balance after    500 points spendable" in first.out
    assert REPLAYED not in first.out

    spent = loyalty("apply", "--program", "stomatorg", "--customer", customer,
                    "--order", new_id("o"), "--points", "150", stdin=TWO_DRILLS)  # fmt: skip
    assert "balance after: 350 points spendable" in spent.out  # 500 - 150

    again = loyalty(*grant)  # the first answer (500), marked as such: the balance is 350
    assert again.code == 0, again.err
    assert "balance after    500 points spendable" in again.out
    assert again.out.rstrip().splitlines()[-1] == REPLAYED

    as_json = loyalty(*grant, "--json")  # stdout stays JSON; the note goes to stderr
    assert as_json.json()["balanceAfter"] == "500"
    assert as_json.err.strip() == f"loyalty: {REPLAYED}"


def test_capture_and_get_redemption_show_money_balance_and_the_deadline_while_held(
    loyalty,  # type: ignore[no-untyped-def]  # noqa: F811  (the fixture)
) -> None:
    customer, order = new_id("c"), new_id("o")
    loyalty("grant", "--program", "stomatorg", "--customer", customer, "--points", "500",
            "--source", "loyalty")  # fmt: skip
    held = loyalty("apply", "--program", "stomatorg", "--customer", customer, "--order", order,
                   "--points", "300", "--hold-seconds", "600", stdin=TWO_DRILLS)  # fmt: skip
    assert held.code == 0, held.err
    assert "HELD" in held.out and "balance after: 200 points spendable" in held.out  # 500 - 300

    shown = loyalty("get-redemption", "--program", "stomatorg", "--order", order)
    assert shown.code == 0, shown.err
    assert f"order {order} · customer {customer} · HELD" in shown.out
    # 300 points at 1 point = 1.00 RUB: a discount of 300.00 RUB
    assert "points           300 (discount 300.00 RUB)" in shown.out
    # --as-of T0 (12:00 +03:00 = 09:00Z) + 600 s
    assert "hold expires at  2026-03-01T09:10:00Z" in shown.out

    captured = loyalty("capture", "--program", "stomatorg", "--order", order)
    assert captured.code == 0, captured.err
    assert f"order {order} · customer {customer} · APPLIED" in captured.out
    assert "points           300 (discount 300.00 RUB)" in captured.out
    assert "hold expires at" not in captured.out
    assert captured.out.rstrip().splitlines()[-1] == "balance after: 200 points spendable"

    assert "hold expires at" not in loyalty("get-redemption", "--program", "stomatorg",
                                            "--order", order).out  # fmt: skip
    missing = loyalty("get-redemption", "--program", "stomatorg", "--order", new_id("o"))
    assert missing.code == 1 and "NOT_FOUND" in missing.err


def test_every_option_of_every_command_has_help() -> None:
    parser = build_parser()
    parsers = {"loyalty": parser, **parser.commands}
    missing = [
        f"{name} {action.option_strings[0]}"
        for name, each in parsers.items()
        for action in each._actions
        if action.option_strings and not action.help
    ]
    assert missing == []
    assert "get-redemption" in parser.commands


def cli(*args: str, stdin: str = "") -> Run:
    out, err = io.StringIO(), io.StringIO()
    try:
        code = main(list(args), stdin=io.StringIO(stdin), stdout=out, stderr=err, environ={})
    except SystemExit as exit_:  # argparse's usage errors
        code = int(exit_.code or 0)
    return Run(code, out.getvalue(), err.getvalue())


def test_a_mistyped_flag_is_unknown_not_a_missing_required_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    result = cli("grant", "--program", "stomatorg", "--custmer", "c-1", "--points", "5",
                 "--source", "loyalty")  # fmt: skip
    err = capsys.readouterr().err
    assert result.code == 2
    assert err.splitlines()[-1] == (
        "loyalty: error: unrecognized argument: --custmer (did you mean --customer?)"
    )
    assert "required" not in err


def test_a_flag_of_another_command_is_unknown_too(capsys: pytest.CaptureFixture[str]) -> None:
    result = cli("account", "--program", "stomatorg", "--customer", "c-1", "--points=5")
    assert result.code == 2
    assert "unrecognized argument: --points" in capsys.readouterr().err


def test_an_empty_stdin_is_one_clear_line(server: ServerProcess) -> None:
    result = cli("quote", "--program", "stomatorg", "--customer", "c-1",
                 "--server", server.address, "--as-of", T0, stdin="  \n")  # fmt: skip
    assert result.code == 2
    assert result.err.splitlines() == [
        "loyalty: no cart: stdin is empty; give the cart's JSON (see --help)"
    ]


def test_a_cart_that_is_not_json_is_one_line_naming_stdin(server: ServerProcess) -> None:
    result = cli("quote", "--program", "stomatorg", "--customer", "c-1",
                 "--server", server.address, "--as-of", T0, stdin="{not json")  # fmt: skip
    assert result.code == 2
    assert len(result.err.splitlines()) == 1
    assert result.err.startswith("loyalty: cannot read the cart from stdin: ")
