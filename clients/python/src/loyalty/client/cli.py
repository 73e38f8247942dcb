"""`loyalty`: the command line for the loyalty service, on `LoyaltyClient`.

Readable tables by default, the responses' proto3 JSON with `--json`. Exit
status: 0 on success, 1 when the service answered with an error (printed with
its reason), 2 for bad usage or an unreadable cart.
"""

import argparse
import difflib
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from google.protobuf import json_format
from google.protobuf.message import Message

from loyalty.client import reports, tables
from loyalty.client.channel import (
    DEFAULT_TARGET,
    DEFAULT_TIMEOUT,
    CallInfo,
    ChannelConfig,
    TlsConfig,
)
from loyalty.client.errors import LoyaltyError
from loyalty.client.requests import parse_cart
from loyalty.client.sync import LoyaltyClient
from loyalty.v1 import account_service_pb2 as account_pb
from loyalty.v1 import cart_pb2

EXIT_SERVICE_ERROR = 1
EXIT_USAGE = 2

CART_HELP = (
    "cart JSON file, '-' for stdin (the default when stdin is not a terminal); "
    "the proto3 JSON mapping of loyalty.v1.Cart"
)
CUSTOMER_HELP = "customer id, e.g. c-42"
ORDER_HELP = "order id, e.g. o-1001"
REQUEST_ID_HELP = (
    "idempotency key (default: a new uuid4); the same key and request again returns the "
    "first answer, marked 'replayed'"
)
PAYMENT_HELP = "payment method id, e.g. denco_card (default: none)"


class UsageError(Exception):
    """Bad input caught before any call: exit 2."""


def instant(text: str) -> datetime:
    """An ISO-8601 instant with its offset, e.g. 2026-03-01T12:00:00+03:00 or ...Z."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 instant: {text!r}") from exc
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no UTC offset (add Z or +03:00)")
    return value


def returned_line(text: str) -> tuple[str, int]:
    """LINE_ID:QUANTITY, e.g. 1:1."""
    line_id, sep, quantity = text.rpartition(":")
    if not sep or not line_id or not quantity.isdigit():
        raise argparse.ArgumentTypeError(f"expected LINE_ID:QUANTITY, got {text!r}")
    return line_id, int(quantity)


def read_cart(path: str | None, stdin: TextIO) -> cart_pb2.Cart:
    if path is None:
        if stdin.isatty():
            raise UsageError("no cart: give --cart FILE, or pipe the cart's JSON on stdin")
        path = "-"
    where = "stdin" if path == "-" else path
    try:
        text = stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read the cart from {where}: {exc.strerror or exc}") from exc
    if not text.strip():
        raise UsageError(f"no cart: {where} is empty; give the cart's JSON (see --help)")
    try:
        return parse_cart(text)
    except (ValueError, json_format.ParseError) as exc:
        reason = " ".join(str(exc).split())  # one line
        raise UsageError(f"cannot read the cart from {where}: {reason}") from exc


# ---- the parser --------------------------------------------------------------------------


def _connection_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """Options every command takes, before or after its name."""
    default = argparse.SUPPRESS if suppress else None
    group = parser.add_argument_group("connection and output")
    add = group.add_argument
    add(
        "--server",
        default=default,
        help=f"host:port (env LOYALTY_SERVER; default {DEFAULT_TARGET})",
    )
    add(
        "--timeout",
        type=float,
        default=default,
        help=f"deadline of each call in seconds (default {DEFAULT_TIMEOUT:g})",
    )
    add(
        "--token",
        default=default,
        help="bearer token, sent as 'authorization: Bearer ...' (env LOYALTY_TOKEN)",
    )
    add(
        "--tls",
        action="store_true",
        default=default,
        help="use TLS (implied by the three options below)",
    )
    add(
        "--root-certs",
        metavar="PEM",
        default=default,
        help="root certificates to trust (default: the system's)",
    )
    add(
        "--client-cert",
        metavar="PEM",
        default=default,
        help="client certificate chain, for mutual TLS",
    )
    add("--client-key", metavar="PEM", default=default, help="client private key, for mutual TLS")
    add(
        "--lang",
        metavar="LANGUAGE",
        default=default,
        help="language of explanations, names and error messages, sent as accept-language "
        "(e.g. ru, en, 'en;q=0.5, ru'; env LOYALTY_LANG; default: the program's)",
    )
    add(
        "--as-of",
        type=instant,
        metavar="INSTANT",
        default=default,
        help="replace 'now' (the server must run with --allow-clock-override)",
    )
    add("--json", action="store_true", default=default, help="print the response as proto3 JSON")


class Parser(argparse.ArgumentParser):
    """argparse, but a mistyped option is reported as unknown before any missing required one."""

    commands: Mapping[str, argparse.ArgumentParser]

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: None = None
    ) -> argparse.Namespace:
        argv = list(sys.argv[1:] if args is None else args)
        unknown = unknown_options(self, argv)
        if unknown:
            self.error(unknown)
        return super().parse_args(argv, namespace)


def _option_strings(parser: argparse.ArgumentParser) -> set[str]:
    return {name for action in parser._actions for name in action.option_strings}


def unknown_options(parser: Parser, argv: Sequence[str]) -> str | None:
    """'unrecognized argument: --custmer (did you mean --customer?)', or None.

    argparse checks required options before it complains of unknown ones, so a typo in a
    required option's name would be reported as that option missing.
    """
    words = list(argv[: argv.index("--")] if "--" in argv else argv)
    command = next((word for word in words if word in parser.commands), None)
    known = _option_strings(parser)
    if command is not None:
        known |= _option_strings(parser.commands[command])
    for word in words:
        name = word.split("=", 1)[0]
        if name.startswith("--") and name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            return f"unrecognized argument: {name}{hint}"
    return None


def build_parser() -> Parser:
    parser = Parser(
        prog="loyalty",
        allow_abbrev=False,
        description="Call the loyalty checkout pricing service.",
        epilog="Exit status: 0 ok, 1 the service answered with an error, 2 bad usage or input.",
    )
    _connection_options(parser, suppress=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    parser.commands = commands.choices

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text, allow_abbrev=False)
        _connection_options(sub, suppress=True)
        sub.add_argument("--program", required=True, help="program id, e.g. stomatorg")
        return sub

    quote = command("quote", "how many points a cart may take (writes nothing)")
    quote.add_argument("--customer", required=True, help=CUSTOMER_HELP)
    quote.add_argument("--cart", help=CART_HELP)
    quote.add_argument("--payment-method", default="", help=PAYMENT_HELP)

    apply = command("apply", "spend (or hold) points on an order")
    apply.add_argument("--customer", required=True, help=CUSTOMER_HELP)
    apply.add_argument("--order", required=True, help=ORDER_HELP)
    apply.add_argument("--cart", help=CART_HELP)
    apply.add_argument(
        "--points", type=int, required=True, help="whole points to spend (at most the quote's)"
    )
    apply.add_argument("--payment-method", default="", help=PAYMENT_HELP)
    apply.add_argument(
        "--hold-seconds", type=int, default=0, help="> 0: only hold the points until capture"
    )
    apply.add_argument("--request-id", help=REQUEST_ID_HELP)

    capture = command("capture", "turn a held redemption into spent points")
    capture.add_argument("--order", required=True, help=ORDER_HELP)
    capture.add_argument("--request-id", help=REQUEST_ID_HELP)

    reverse = command("reverse", "give points back for a cancelled order or returned units")
    reverse.add_argument("--order", required=True, help=ORDER_HELP)
    reverse.add_argument(
        "--line", dest="lines", action="append", type=returned_line, default=[],
        metavar="LINE_ID:QTY",
        help="returned units of a line, repeated per line; none: everything that remains",
    )  # fmt: skip
    reverse.add_argument("--reason", default="", help="free text kept with the reversal")
    reverse.add_argument("--request-id", help=REQUEST_ID_HELP)

    get_redemption = command("get-redemption", "an order's redemption: state, points, money")
    get_redemption.add_argument("--order", required=True, help=ORDER_HELP)

    grant = command("grant", "credit points of a source")
    grant.add_argument("--customer", required=True, help=CUSTOMER_HELP)
    grant.add_argument("--points", type=int, required=True, help="whole points to credit (> 0)")
    grant.add_argument("--source", required=True, help="e.g. loyalty, promo, action")
    grant.add_argument("--reason", default="", help="free text kept in the ledger")
    grant.add_argument(
        "--available-at", type=instant, metavar="INSTANT", help="spendable from (default: now)"
    )
    grant.add_argument(
        "--expires-at",
        type=instant,
        metavar="INSTANT",
        help="expiry (default: the source's expiry days after --available-at)",
    )
    grant.add_argument("--request-id", help=REQUEST_ID_HELP)

    accrue = command("accrue", "record what a delivered order earns")
    accrue.add_argument("--customer", required=True, help=CUSTOMER_HELP)
    accrue.add_argument("--order", required=True, help=ORDER_HELP)
    accrue.add_argument("--cart", help=CART_HELP)
    accrue.add_argument(
        "--delivered-at",
        type=instant,
        required=True,
        metavar="INSTANT",
        help="when the order was delivered (maturity counts from it)",
    )
    accrue.add_argument("--request-id", help=REQUEST_ID_HELP)

    account = command("account", "balances, next expiry, tier and debt of a customer")
    account.add_argument("--customer", required=True, help=CUSTOMER_HELP)

    ledger = command("ledger", "every ledger entry of a customer, oldest first")
    ledger.add_argument("--customer", required=True, help=CUSTOMER_HELP)
    ledger.add_argument(
        "--page-size", type=int, default=0, help="entries per call (default: the server's)"
    )
    report = command("report", "finance: the points liability, or how it moved (role finance)")
    report.add_argument("kind", choices=["liability", "roll-forward"])
    report.add_argument(
        "--from", dest="start", type=instant, metavar="INSTANT",
        help="roll-forward: the window's start (default: 365 days before --to)",
    )  # fmt: skip
    report.add_argument(
        "--to", dest="end", type=instant, metavar="INSTANT",
        help="roll-forward: the window's end (default: now)",
    )  # fmt: skip
    report.add_argument(
        "--format", choices=reports.FORMATS, default="text", help="text (default), csv or json"
    )
    report.add_argument("--chart", type=Path, metavar="FILE", help="also draw it (.png or .svg)")
    return parser


def channel_config(args: argparse.Namespace, environ: dict[str, str]) -> ChannelConfig:
    tls = None
    if args.tls or args.root_certs or args.client_cert or args.client_key:
        try:
            tls = TlsConfig.from_files(
                root_certificates=args.root_certs,
                client_certificate=args.client_cert,
                client_key=args.client_key,
            )
        except (OSError, ValueError) as exc:
            raise UsageError(f"TLS: {exc}") from exc
    return ChannelConfig(
        target=args.server or environ.get("LOYALTY_SERVER") or DEFAULT_TARGET,
        timeout=args.timeout if args.timeout is not None else DEFAULT_TIMEOUT,
        token=args.token or environ.get("LOYALTY_TOKEN") or None,
        tls=tls,
        language=args.lang or environ.get("LOYALTY_LANG") or None,
    )


# ---- the commands ------------------------------------------------------------------------

# A command: the client, its arguments, stdin, and the CallInfo its mutation fills in.
Run = Callable[[LoyaltyClient, argparse.Namespace, TextIO, CallInfo], tuple[Message, str]]

REPLAYED = (
    "replayed: this request id was answered before; the answer above is that first one, "
    "and nothing changed now"
)


def run_quote(
    client: LoyaltyClient, args: argparse.Namespace, stdin: TextIO, info: CallInfo
) -> tuple[Message, str]:
    cart = read_cart(args.cart, stdin)
    response = client.quote_redemption(
        program_id=args.program, customer_id=args.customer, cart=cart,
        payment_method=args.payment_method, as_of=args.as_of,
    )  # fmt: skip
    text = tables.quote(
        response, program_id=args.program, customer_id=args.customer, currency=cart.currency
    )
    return response, text


def run_apply(
    client: LoyaltyClient, args: argparse.Namespace, stdin: TextIO, info: CallInfo
) -> tuple[Message, str]:
    cart = read_cart(args.cart, stdin)
    response = client.apply_redemption(
        program_id=args.program, customer_id=args.customer, order_id=args.order, cart=cart,
        points=args.points, payment_method=args.payment_method, hold_seconds=args.hold_seconds,
        request_id=args.request_id, as_of=args.as_of, info=info,
    )  # fmt: skip
    return response, tables.applied(response, currency=cart.currency)


def run_capture(
    client: LoyaltyClient, args: argparse.Namespace, stdin: TextIO, info: CallInfo
) -> tuple[Message, str]:
    response = client.capture_redemption(
        program_id=args.program, order_id=args.order, request_id=args.request_id,
        as_of=args.as_of, info=info,
    )  # fmt: skip
    return response, tables.captured(response)


def run_get_redemption(
    client: LoyaltyClient, args: argparse.Namespace, stdin: TextIO, info: CallInfo
) -> tuple[Message, str]:
    response = client.get_redemption(program_id=args.program, order_id=args.order, as_of=args.as_of)
    return response, tables.redemption(response.redemption)


def run_reverse(
    client: LoyaltyClient, args: argparse.Namespace, stdin: TextIO, info: CallInfo
) -> tuple[Message, str]:
    response = client.reverse_redemption(
        program_id=args.program, order_id=args.order, lines=args.lines, reason=args.reason,
        request_id=args.request_id, as_of=args.as_of, info=info,
    )  # fmt: skip
    return response, tables.reversed_(response, order_id=args.order)


def run_grant(
    client: LoyaltyClient, args: argparse.Namespace, stdin: TextIO, info: CallInfo
) -> tuple[Message, str]:
    response = client.grant_points(
        program_id=args.program, customer_id=args.customer, points=args.points,
        source=args.source, reason=args.reason, available_at=args.available_at,
        expires_at=args.expires_at, request_id=args.request_id, as_of=args.as_of, info=info,
    )  # fmt: skip
    return response, tables.granted(response)


def run_accrue(
    client: LoyaltyClient, args: argparse.Namespace, stdin: TextIO, info: CallInfo
) -> tuple[Message, str]:
    cart = read_cart(args.cart, stdin)
    response = client.accrue_order(
        program_id=args.program, customer_id=args.customer, order_id=args.order, cart=cart,
        delivered_at=args.delivered_at, request_id=args.request_id, as_of=args.as_of,
        info=info,
    )  # fmt: skip
    return response, tables.accrued(response, order_id=args.order)


def run_account(
    client: LoyaltyClient, args: argparse.Namespace, stdin: TextIO, info: CallInfo
) -> tuple[Message, str]:
    response = client.get_account(
        program_id=args.program, customer_id=args.customer, as_of=args.as_of
    )
    text = tables.account(response, program_id=args.program, customer_id=args.customer)
    return response, text


def run_ledger(
    client: LoyaltyClient, args: argparse.Namespace, stdin: TextIO, info: CallInfo
) -> tuple[Message, str]:
    entries = list(
        client.ledger_entries(
            program_id=args.program, customer_id=args.customer,
            page_size=args.page_size, as_of=args.as_of,
        )
    )  # fmt: skip
    return account_pb.ListLedgerEntriesResponse(entries=entries), tables.ledger(entries)


def run_report(
    client: LoyaltyClient, args: argparse.Namespace, stdin: TextIO, info: CallInfo
) -> tuple[Message, str]:
    response: Message
    if args.kind == "liability":
        response = client.get_liability(program_id=args.program, as_of=args.as_of)
    else:
        end = args.end or args.as_of or datetime.now(UTC)
        start = args.start or end - timedelta(days=365)
        response = client.get_liability_roll_forward(
            program_id=args.program, start_time=start, end_time=args.end, as_of=args.as_of
        )
    if args.chart is not None:
        try:
            reports.chart(response, args.chart, program_id=args.program)
        except reports.ChartError as exc:
            raise UsageError(str(exc)) from exc
    fmt = "json" if args.json else args.format
    return response, reports.render(response, fmt=fmt, program_id=args.program)


COMMANDS: dict[str, Run] = {
    "quote": run_quote,
    "apply": run_apply,
    "capture": run_capture,
    "reverse": run_reverse,
    "get-redemption": run_get_redemption,
    "grant": run_grant,
    "accrue": run_accrue,
    "account": run_account,
    "ledger": run_ledger,
    "report": run_report,
}


def to_json(message: Message) -> str:
    return json_format.MessageToJson(
        message, indent=2, ensure_ascii=False, always_print_fields_with_no_presence=True
    )


def error_report(error: LoyaltyError) -> dict[str, Any]:
    return {
        "code": error.code.name,
        "reason": error.reason,
        "message": error.message,
        "metadata": error.metadata,
        "fieldViolations": [
            {"field": v.field, "description": v.description} for v in error.field_violations
        ],
        "localizedMessage": {"locale": error.locale, "message": error.localized_message},
    }


def print_error(error: LoyaltyError, *, as_json: bool, stderr: TextIO) -> None:
    if as_json:
        print(json.dumps({"error": error_report(error)}, ensure_ascii=False, indent=2), file=stderr)
        return
    print(f"loyalty: error: {error.summary()}", file=stderr)
    if error.localized_message:
        print(f"  ({error.locale}) {error.localized_message}", file=stderr)
    for key, value in sorted(error.metadata.items()):
        print(f"  {key}: {value}", file=stderr)
    for violation in error.field_violations:
        print(f"  field {violation.field}: {violation.description}", file=stderr)


def main(
    argv: Sequence[str] | None = None,
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    environ: dict[str, str] | None = None,
) -> int:
    stdin, stdout, stderr = stdin or sys.stdin, stdout or sys.stdout, stderr or sys.stderr
    args = build_parser().parse_args(argv)
    names = ("server", "timeout", "token", "root_certs", "client_cert", "client_key", "as_of")
    for name in (*names, "lang"):
        args.__dict__.setdefault(name, None)
    for name in ("tls", "json"):
        args.__dict__[name] = bool(args.__dict__.get(name))
    info = CallInfo()
    try:
        config = channel_config(args, dict(os.environ) if environ is None else environ)
        with LoyaltyClient(config=config) as client:
            response, text = COMMANDS[args.command](client, args, stdin, info)
    except UsageError as exc:
        print(f"loyalty: {exc}", file=stderr)
        return EXIT_USAGE
    except LoyaltyError as error:
        print_error(error, as_json=args.json, stderr=stderr)
        return EXIT_SERVICE_ERROR
    print(to_json(response) if args.json and args.command != "report" else text, file=stdout)
    if info.replayed and args.json:  # stdout stays the response's JSON
        print(f"loyalty: {REPLAYED}", file=stderr)
    elif info.replayed:
        print(REPLAYED, file=stdout)
    return 0


def entry_point() -> None:
    """The `loyalty` console script."""
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:  # `loyalty ledger ... | head`: the reader left early
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        code = 1
    sys.exit(code)
