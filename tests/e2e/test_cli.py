"""The `loyalty` command line against a real server: tables, --json, exit codes."""

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from loyalty.client.cli import main
from tests.e2e.builders import new_id
from tests.support.server import ROOT, ServerProcess

CARTS = ROOT / "examples" / "carts"
T0 = "2026-03-01T12:00:00+03:00"  # every command here says --as-of


class Run:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    def json(self) -> dict[str, object]:
        return json.loads(self.out)  # type: ignore[no-any-return]


@pytest.fixture
def loyalty(server: ServerProcess):  # type: ignore[no-untyped-def]
    """Run the CLI in-process against the test server; stdin text optional."""

    def run(*args: str, stdin: str = "") -> Run:
        out, err = io.StringIO(), io.StringIO()
        code = main(
            [*args, "--server", server.address, "--as-of", T0],
            stdin=io.StringIO(stdin), stdout=out, stderr=err, environ={},
        )  # fmt: skip
        return Run(code, out.getvalue(), err.getvalue())

    return run


def test_the_readme_scenario_in_tables(loyalty) -> None:  # type: ignore[no-untyped-def]
    customer, order = new_id("c"), new_id("order")
    granted = loyalty("grant", "--program", "stomatorg", "--customer", customer, "--points", "500",
                      "--source", "loyalty", "--reason", "welcome")  # fmt: skip
    assert granted.code == 0 and "balance after    500 points spendable" in granted.out

    quote = loyalty("quote", "--program", "stomatorg", "--customer", customer,
                    "--cart", str(CARTS / "two-drills.json"))  # fmt: skip
    assert quote.code == 0, quote.err
    assert "tier base · 500 points spendable" in quote.out
    assert "max points      300 (discount 300.00 RUB)" in quote.out
    assert "binding         TIER_CAP: the tier's redeem cap" in quote.out
    assert "payable         10,000.00 RUB (delivery included)" in quote.out
    assert "points to earn  291" in quote.out

    cart = (CARTS / "two-drills.json").read_text()
    applied = loyalty("apply", "--program", "stomatorg", "--customer", customer, "--order", order,
                      "--points", "300", stdin=cart)  # the cart from stdin  # fmt: skip
    assert applied.code == 0, applied.err
    assert "APPLIED" in applied.out and "balance after: 200 points spendable" in applied.out

    back = loyalty("reverse", "--program", "stomatorg", "--order", order, "--line", "1:1")
    assert back.code == 0, back.err
    assert "PARTIALLY_REVERSED" in back.out
    assert "points returned     150" in back.out and "350 points spendable" in back.out

    account = loyalty("account", "--program", "stomatorg", "--customer", customer)
    assert account.code == 0 and "spendable    350" in account.out
    assert "loyalty        350" in account.out

    ledger = loyalty("ledger", "--program", "stomatorg", "--customer", customer)
    assert ledger.code == 0
    assert [line.split()[1:3] for line in ledger.out.splitlines()[1:4]] == [
        ["GRANT", "+500"], ["REDEMPTION", "-300"], ["REVERSAL", "+150"],
    ]  # fmt: skip
    assert ledger.out.splitlines()[-1] == "3 entries, sum +350"


def test_quote_shows_exclusions_and_the_recommended_option(loyalty) -> None:  # type: ignore[no-untyped-def]
    customer = new_id("c")
    loyalty("grant", "--program", "stomatorg", "--customer", customer, "--points", "1000",
            "--source", "loyalty")  # fmt: skip
    quote = loyalty("quote", "--program", "stomatorg", "--customer", customer,
                    "--cart", str(CARTS / "promo.json"))  # fmt: skip
    assert quote.code == 0, quote.err
    assert "option 0: keep the promo code, spend no points\n" in quote.out
    assert "option 1: drop the promo code, spend points  ← recommended" in quote.out
    assert "PROMO_CONFLICT" in quote.out
    # line 2 carries the no_points tag; line 3 is a service, which stomatorg excludes
    # each with why, in the program's language (no --lang)
    assert (
        "  2              no_points  Товары с пометкой «no_points» баллами не оплачиваются\n"
        "  3              services   Услуги баллами не оплачиваются"
    ) in quote.out
    english = loyalty("--lang", "en", "quote", "--program", "stomatorg", "--customer", customer,
                      "--cart", str(CARTS / "promo.json"))  # fmt: skip
    assert "  3              services   Services cannot be paid with points" in english.out
    # option 1: 3 % of 10,000.00 RUB eligible → 300 points
    assert (
        "  why             The Basic tier lets points pay up to 3% of RUB10,000.00: 300 points"
        in english.out
    )

    loyalty("grant", "--program", "denco", "--customer", customer, "--points", "10000",
            "--source", "loyalty")  # fmt: skip
    denco = loyalty("quote", "--program", "denco", "--customer", customer,
                    "--cart", str(CARTS / "denco.json"))  # fmt: skip
    # the rules' names from denco.toml (DENCO 1.6)
    assert (
        "  1              reima_lassie       "
        "Баллами не оплачиваются товары брендов Reima и Lassie\n"
        "  2              gift_certificates  Баллами не оплачиваются подарочные сертификаты"
    ) in denco.out
    # 50 % of the one eligible line, 6,500 ₽ → 3,250 points; all or nothing
    assert "max points      3250" in denco.out and "ALL_OR_NOTHING" in denco.out


def test_json_output_is_the_responses_proto3_json(loyalty) -> None:  # type: ignore[no-untyped-def]
    customer = new_id("c")
    granted = loyalty("--json", "grant", "--program", "stomatorg", "--customer", customer,
                      "--points", "500", "--source", "loyalty")  # fmt: skip
    assert granted.json() == {"points": "500", "balanceAfter": "500", "debtPoints": "0"}
    quote = loyalty("quote", "--json", "--program", "stomatorg", "--customer", customer,
                    "--cart", str(CARTS / "two-drills.json"))  # fmt: skip
    option = quote.json()["options"][0]  # type: ignore[index]
    assert option["maxPoints"] == "300"
    assert option["bindingConstraint"] == "BINDING_CONSTRAINT_TIER_CAP"


def test_a_service_error_exits_1_with_its_reason(loyalty) -> None:  # type: ignore[no-untyped-def]
    customer = new_id("c")
    loyalty("grant", "--program", "stomatorg", "--customer", customer, "--points", "500",
            "--source", "loyalty")  # fmt: skip
    too_many = loyalty("apply", "--program", "stomatorg", "--customer", customer,
                       "--order", new_id("o"), "--points", "301",
                       "--cart", str(CARTS / "two-drills.json"))  # fmt: skip
    assert too_many.code == 1 and too_many.out == ""
    assert too_many.err.startswith("loyalty: error: FAILED_PRECONDITION EXCEEDS_MAXIMUM: ")
    assert "  maximum: 300\n  requested: 301\n" in too_many.err

    bad = loyalty("--json", "grant", "--program", "stomatorg", "--customer", customer,
                  "--points", "0", "--source", "loyalty")  # fmt: skip
    assert bad.code == 1
    error = json.loads(bad.err)["error"]
    assert (error["code"], error["reason"]) == ("INVALID_ARGUMENT", "INVALID_REQUEST")
    assert [v["field"] for v in error["fieldViolations"]] == ["points"]

    unknown = loyalty("reverse", "--program", "stomatorg", "--order", new_id("nobody"))
    assert unknown.code == 1 and "NOT_FOUND ORDER_NOT_FOUND" in unknown.err


def test_bad_input_exits_2(loyalty, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    broken = tmp_path / "cart.json"
    broken.write_text('{"currency": "RUB", "lines": [{"lineId": "1", "quantityy": 1}]}')
    run = loyalty("quote", "--program", "stomatorg", "--customer", "c", "--cart", str(broken))
    assert run.code == 2 and "cannot read the cart" in run.err and "quantityy" in run.err
    with pytest.raises(SystemExit) as usage:
        loyalty("reverse", "--program", "stomatorg", "--order", "o", "--line", "1")
    assert usage.value.code == 2


def test_the_console_script(server: ServerProcess) -> None:
    script = Path(sys.executable).with_name("loyalty")
    customer = new_id("c")
    result = subprocess.run(
        [str(script), "account", "--program", "stomatorg", "--customer", customer],
        env={"LOYALTY_SERVER": server.address, "LOYALTY_TOKEN": "t"},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"stomatorg · customer {customer}"
    assert "tier         base" in result.stdout
