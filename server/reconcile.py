"""`loyalty-server reconcile`: do buckets, holds, debt and the ledger agree, account by account?

Everything is read in one snapshot of the stored rows (a REPEATABLE READ
transaction on PostgreSQL; SQLite's write lock), and `now` is taken once that
snapshot holds, so a server writing meanwhile never makes a false mismatch.

The checks, each on the rows as stored (whether or not the expiry job has run,
lapsed holds have been written down, or matured accruals have paid debt yet):

* **ledger**, per account: the entries effective at or before `now` sum to the
  `remaining` of the account's buckets available at or before `now` (expired
  or not) minus its debt. Every write keeps this: a spend, hold, clawback or
  expiry takes from a bucket what its negative entry says; a release, return or
  credit puts back what its positive entry says; what pays debt leaves the
  debt, not a bucket; an accrual paying debt at maturity moves points from
  its bucket to the debt with no entry; the expiry job moves `remaining` to
  `expired_points` with an EXPIRY entry dated at the expiry, which is in the
  past. Pending points count on neither side until they are available.
* **bucket**: 0 ≤ remaining, 0 ≤ expired_points, and remaining + expired_points
  + what redemptions took from it and have not given back ≤ granted.
* **redemption**: points = Σ line points = Σ points taken from buckets; a live
  hold (HELD) has given nothing back; a released or lapsed one (RELEASED,
  EXPIRED) gave all back and reversed nothing; otherwise the points given back
  to buckets = points_reversed = Σ over lines of floor(points × returned /
  quantity) (docs/rules.md §6), and the state says whether no, some or all units came
  back. An order's ledger entries, over all its redemption attempts: REDEMPTION +
  HOLD = −Σ points, RELEASE = Σ points of the released or lapsed ones, REVERSAL =
  Σ points_reversed.
* **accrual**: points = Σ line points, base = Σ line bases; points_clawed_back =
  Σ floor(line points × returned / quantity), and the same for the base; its
  bucket was granted exactly its points; its ACCRUAL entries sum to its points,
  and its CLAWBACK and DEBT entries take back no more than points_clawed_back.
* **order** (docs/rules.md §6, one aggregate): its redemptions and its accrual are its
  customer's; every ledger entry naming the order is on its customer's account;
  at most one redemption is live (HELD, APPLIED, PARTIALLY_REVERSED, REVERSED)
  and the attempts are numbered 1, 2, … in order; every line a redemption or the
  accrual names is a line of the order.
* **idempotency**: every claimed request id has its stored answer (the claim and
  the answer commit together with the effect).
"""

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, select, text

from pricing.money import cumulative_share
from pricing.order import LIVE_STATES, RedemptionState
from server.store.reporting import totals_disagreements
from server.store.schema import (
    accounts,
    accrual_lines,
    accruals,
    buckets,
    idempotency_keys,
    ledger_entries,
    order_lines,
    orders,
    redemption_debits,
    redemption_lines,
    redemptions,
)

_SPENT_STATES = ("APPLIED", "PARTIALLY_REVERSED", "REVERSED")
_GIVEN_BACK_STATES = ("RELEASED", "EXPIRED")
_LIVE = {state.value for state in LIVE_STATES}


Key = tuple[str, str]  # (program_id, customer_id)


@dataclass(frozen=True)
class Mismatch:
    """One disagreement: where (account and object), what, and expected against found."""

    program_id: str
    customer_id: str
    subject: str  # "account", "bucket 12", "redemption <id> (order o-1)", …
    what: str
    expected: object
    found: object

    def __str__(self) -> str:
        return (
            f"{self.program_id}/{self.customer_id} {self.subject}: {self.what}: "
            f"expected {self.expected}, found {self.found}"
        )


@dataclass
class Report:
    now: datetime
    accounts: int = 0
    buckets: int = 0
    entries: int = 0
    redemptions: int = 0
    accruals: int = 0
    orders: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def summary(self) -> str:
        counted = (
            f"{self.accounts} accounts, {self.buckets} buckets, {self.entries} ledger entries, "
            f"{self.redemptions} redemptions, {self.accruals} accruals, {self.orders} orders"
        )
        if self.ok:
            return f"reconciled at {self.now.isoformat()}: {counted}; no mismatch"
        return (
            f"reconciled at {self.now.isoformat()}: {counted}; "
            f"{len(self.mismatches)} mismatch{'es' if len(self.mismatches) != 1 else ''}"
        )


def reconcile(engine: Engine, *, as_of: datetime | None = None) -> Report:
    """Check every account of the database; `as_of` replaces the wall clock (tests)."""
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection = connection.execution_options(isolation_level="REPEATABLE READ")
        with connection.begin():
            # The snapshot is taken by the first statement; `now` only after it, so every
            # write the snapshot holds was made at an instant before `now`.
            connection.execute(text("SELECT 1"))
            now = as_of or datetime.now(UTC)
            return _check(connection, now)


class _Findings:
    def __init__(self, report: Report) -> None:
        self.report = report

    def add(self, account: Key, subject: str, what: str, expected: object, found: object) -> None:
        self.report.mismatches.append(
            Mismatch(account[0], account[1], subject, what, expected, found)
        )

    def unless_equal(
        self, account: Key, subject: str, what: str, expected: object, found: object
    ) -> None:
        if expected != found:
            self.add(account, subject, what, expected, found)


def _check(connection: Connection, now: datetime) -> Report:
    report = Report(now=now)
    found = _Findings(report)
    by_order = _entries_by_order(connection)
    _check_accounts(connection, now, found)
    _check_buckets(connection, found)
    _check_redemptions(connection, by_order, found)
    _check_accruals(connection, by_order, found)
    _check_orders(connection, found)
    _check_idempotency(connection, found)
    _check_reporting_totals(connection, found)
    report.mismatches.sort(key=lambda m: (m.program_id, m.customer_id, m.subject, m.what))
    return report


def _check_accounts(connection: Connection, now: datetime, found: _Findings) -> None:
    """The ledger against buckets and debt, per account."""
    debt: dict[Key, int] = {}
    for program_id, customer_id, owed in connection.execute(
        select(accounts.c.program_id, accounts.c.customer_id, accounts.c.debt_points)
    ):
        debt[(program_id, customer_id)] = int(owed)
    e = ledger_entries.c
    ledger: dict[Key, int] = defaultdict(int)
    for program_id, customer_id, points in connection.execute(
        select(e.program_id, e.customer_id, func.sum(e.points))
        .where(e.effective_at <= now)
        .group_by(e.program_id, e.customer_id)
    ):
        ledger[(program_id, customer_id)] = int(points)
    found.report.entries = int(
        connection.execute(select(func.count()).select_from(ledger_entries)).scalar_one()
    )
    b = buckets.c
    available: dict[Key, int] = defaultdict(int)
    for program_id, customer_id, points in connection.execute(
        select(b.program_id, b.customer_id, func.sum(b.remaining))
        .where(b.available_at <= now)
        .group_by(b.program_id, b.customer_id)
    ):
        available[(program_id, customer_id)] = int(points)
    found.report.accounts = len(debt)
    for account in sorted(set(debt) | set(ledger) | set(available)):
        owed = debt.get(account, 0)
        if account not in debt:
            found.add(account, "account", "rows without an account row", "an account", "none")
        if owed < 0:
            found.add(account, "account", "debt", ">= 0", owed)
        found.unless_equal(
            account,
            "account",
            f"ledger entries effective by {now.isoformat()} vs buckets available by then "
            f"({available[account]}) - debt ({owed})",
            available[account] - owed,
            ledger[account],
        )


def _check_buckets(connection: Connection, found: _Findings) -> None:
    d = redemption_debits.c
    outstanding = (
        select(d.bucket_id, func.sum(d.points_taken - d.points_returned).label("out"))
        .group_by(d.bucket_id)
        .subquery()
    )
    b = buckets.c
    rows = connection.execute(
        select(
            b.bucket_id, b.program_id, b.customer_id, b.granted, b.remaining, b.expired_points,
            func.coalesce(outstanding.c.out, 0).label("taken_out"),
        ).outerjoin(outstanding, outstanding.c.bucket_id == b.bucket_id)
    )  # fmt: skip
    for row in rows:
        found.report.buckets += 1
        account = (row.program_id, row.customer_id)
        subject = f"bucket {row.bucket_id}"
        taken_out = int(row.taken_out)
        if row.remaining < 0:
            found.add(account, subject, "remaining", ">= 0", row.remaining)
        if row.expired_points < 0:
            found.add(account, subject, "expired_points", ">= 0", row.expired_points)
        accounted = row.remaining + row.expired_points + taken_out
        if accounted > row.granted:
            found.add(
                account,
                subject,
                f"remaining {row.remaining} + expired {row.expired_points} + taken by "
                f"redemptions {taken_out} exceed what was granted",
                f"<= {row.granted}",
                accounted,
            )


def _check_redemptions(
    connection: Connection, by_order: dict[Key, dict[str, int]], found: _Findings
) -> None:
    lines: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
    rl = redemption_lines.c
    for redemption_id, quantity, points, returned in connection.execute(
        select(rl.redemption_id, rl.quantity, rl.points, rl.returned_units)
    ):
        lines[redemption_id].append((quantity, points, returned))
    d = redemption_debits.c
    debits: dict[str, tuple[int, int]] = {}
    for redemption_id, taken, given_back in connection.execute(
        select(d.redemption_id, func.sum(d.points_taken), func.sum(d.points_returned)).group_by(
            d.redemption_id
        )
    ):
        debits[redemption_id] = (int(taken), int(given_back))
    r = redemptions.c
    rows = connection.execute(
        select(
            r.redemption_id, r.program_id, r.customer_id, r.order_id, r.state, r.points,
            r.points_reversed,
        )
    ).all()  # fmt: skip
    _check_order_entries(rows, by_order, found)
    for row in rows:
        found.report.redemptions += 1
        account = (row.program_id, row.customer_id)
        subject = f"redemption {row.redemption_id} (order {row.order_id})"

        def check(what: str, expected: object, value: object) -> None:
            found.unless_equal(account, subject, what, expected, value)  # noqa: B023

        mine = lines.get(row.redemption_id, [])
        taken, given_back = debits.get(row.redemption_id, (0, 0))
        check("sum of line points", row.points, sum(points for _, points, _ in mine))
        check("sum of points taken from buckets", row.points, taken)
        units_back = sum(back for _, _, back in mine)
        if row.state in _GIVEN_BACK_STATES:
            check(f"points given back to buckets by a {row.state} hold", row.points, given_back)
            check(f"points_reversed of a {row.state} hold", 0, row.points_reversed)
            check(f"units returned on a {row.state} hold", 0, units_back)
        elif row.state == "HELD":
            check("points given back to buckets by a live hold", 0, given_back)
            check("units returned on a live hold", 0, units_back)
        elif row.state in _SPENT_STATES:
            check("points given back to buckets", row.points_reversed, given_back)
            check(
                "points_reversed vs sum of floor(line points * returned / quantity)",
                sum(cumulative_share(p, done=back, of=q) for q, p, back in mine),
                row.points_reversed,
            )
            all_back = bool(mine) and all(back == quantity for quantity, _, back in mine)
            expected_state = (
                "REVERSED" if all_back else "PARTIALLY_REVERSED" if units_back else "APPLIED"
            )
            check("state for the units returned", expected_state, row.state)
        else:
            found.add(account, subject, "state", "a known state", row.state)


def _check_order_entries(
    rows: Sequence[Any], by_order: dict[Key, dict[str, int]], found: _Findings
) -> None:
    """An order's REDEMPTION, HOLD, RELEASE and REVERSAL entries, over all its attempts."""
    attempts: dict[Key, list[Any]] = defaultdict(list)
    for row in rows:
        attempts[(row.program_id, row.order_id)].append(row)
    for (program_id, order_id), mine in attempts.items():
        account = (program_id, mine[-1].customer_id)
        subject = f"order {order_id}"
        entries = by_order.get((program_id, order_id), {})
        spent = entries.get("REDEMPTION", 0) + entries.get("HOLD", 0)
        released = sum(row.points for row in mine if row.state in _GIVEN_BACK_STATES)
        reversed_ = sum(row.points_reversed for row in mine)
        for what, expected, value in (
            ("REDEMPTION + HOLD entries", -sum(row.points for row in mine), spent),
            ("RELEASE entries", released, entries.get("RELEASE", 0)),
            ("REVERSAL entries", reversed_, entries.get("REVERSAL", 0)),
        ):
            found.unless_equal(account, subject, what, expected, value)


def _check_orders(connection: Connection, found: _Findings) -> None:
    """Everything recorded about an order is its customer's, on its lines (docs/rules.md §6)."""
    o = orders.c
    owner = {
        (p, order): c
        for p, order, c in connection.execute(select(o.program_id, o.order_id, o.customer_id))
    }
    found.report.orders = len(owner)
    lines = defaultdict(set)
    for program_id, order_id, line_id in connection.execute(
        select(order_lines.c.program_id, order_lines.c.order_id, order_lines.c.line_id)
    ):
        lines[(program_id, order_id)].add(line_id)
    _check_owners(connection, owner, found)
    _check_attempts(connection, found)
    _check_order_lines(connection, lines, found)


def _check_owners(connection: Connection, owner: dict[Key, str], found: _Findings) -> None:
    """Redemptions, accruals and ledger entries of an order are on its customer's account."""
    r, a, e = redemptions.c, accruals.c, ledger_entries.c
    named = (
        ("redemption", select(r.program_id, r.order_id, r.customer_id).distinct()),
        ("accrual", select(a.program_id, a.order_id, a.customer_id)),
        (
            "ledger entries",
            select(e.program_id, e.order_id, e.customer_id)
            .where(e.order_id.is_not(None))
            .distinct(),
        ),
    )
    for what, query in named:
        for program_id, order_id, customer_id in connection.execute(query):
            expected = owner.get((program_id, order_id))
            if expected != customer_id:
                found.add(
                    (program_id, customer_id),
                    f"order {order_id}",
                    f"customer of its {what}",
                    expected or "a recorded order",
                    customer_id,
                )


def _check_attempts(connection: Connection, found: _Findings) -> None:
    """At most one live redemption per order; attempts numbered 1, 2, … oldest first."""
    r = redemptions.c
    attempts: dict[Key, list[tuple[int, str, str]]] = defaultdict(list)
    for program_id, order_id, customer_id, attempt, state in connection.execute(
        select(r.program_id, r.order_id, r.customer_id, r.attempt, r.state)
    ):
        attempts[(program_id, order_id)].append((attempt, state, customer_id))
    for (program_id, order_id), mine in attempts.items():
        mine.sort()
        account = (program_id, mine[-1][2])
        live = [state for _, state, _ in mine if state in _LIVE]
        if len(live) > 1:
            found.add(account, f"order {order_id}", "live redemptions", "at most 1", len(live))
        numbers = [attempt for attempt, _, _ in mine]
        found.unless_equal(
            account,
            f"order {order_id}",
            "attempt numbers",
            list(range(1, len(mine) + 1)),
            numbers,
        )
        dead = [state for _, state, _ in mine[:-1] if state not in _GIVEN_BACK_STATES]
        if dead:
            found.add(
                account,
                f"order {order_id}",
                "states of the attempts before the latest",
                f"{RedemptionState.RELEASED.value} or {RedemptionState.EXPIRED.value}",
                dead,
            )


def _check_order_lines(
    connection: Connection, lines: dict[Key, set[str]], found: _Findings
) -> None:
    """Every line a redemption or an accrual names is a line of its order."""
    r, rl, a, al = redemptions.c, redemption_lines.c, accruals.c, accrual_lines.c
    named = (
        (
            "redemption",
            select(r.program_id, r.order_id, r.customer_id, rl.line_id).join(
                redemption_lines, rl.redemption_id == r.redemption_id
            ),
        ),
        (
            "accrual",
            select(a.program_id, a.order_id, a.customer_id, al.line_id).join(
                accrual_lines, al.accrual_id == a.accrual_id
            ),
        ),
    )
    for what, query in named:
        for program_id, order_id, customer_id, line_id in connection.execute(query):
            if line_id not in lines.get((program_id, order_id), set()):
                found.add(
                    (program_id, customer_id),
                    f"order {order_id}",
                    f"line {line_id!r} of its {what}",
                    "a line of the order",
                    "missing",
                )


def _check_accruals(
    connection: Connection, by_order: dict[Key, dict[str, int]], found: _Findings
) -> None:
    al = accrual_lines.c
    lines: dict[str, list[tuple[int, int, int, int]]] = defaultdict(list)
    for accrual_id, quantity, points, base, returned in connection.execute(
        select(al.accrual_id, al.quantity, al.points, al.base_minor, al.returned_units)
    ):
        lines[accrual_id].append((quantity, points, base, returned))
    a = accruals.c
    rows = connection.execute(
        select(
            a.accrual_id, a.program_id, a.customer_id, a.order_id, a.points, a.base_minor,
            a.base_returned_minor, a.points_clawed_back, a.bucket_id,
            buckets.c.granted.label("bucket_granted"),
        ).outerjoin(buckets, buckets.c.bucket_id == a.bucket_id)
    )  # fmt: skip
    for row in rows:
        found.report.accruals += 1
        account = (row.program_id, row.customer_id)
        subject = f"accrual {row.accrual_id} (order {row.order_id})"

        def check(what: str, expected: object, value: object) -> None:
            found.unless_equal(account, subject, what, expected, value)  # noqa: B023

        mine = lines.get(row.accrual_id, [])
        check("sum of line points", row.points, sum(p for _, p, _, _ in mine))
        check("sum of line bases", row.base_minor, sum(base for _, _, base, _ in mine))
        check(
            "points_clawed_back vs sum of floor(line points * returned / quantity)",
            sum(cumulative_share(p, done=back, of=q) for q, p, _, back in mine),
            row.points_clawed_back,
        )
        check(
            "base_returned_minor vs sum of floor(line base * returned / quantity)",
            sum(cumulative_share(base, done=back, of=q) for q, _, base, back in mine),
            row.base_returned_minor,
        )
        if row.bucket_id is None:
            check("points of an accrual without a bucket", 0, row.points)
        else:
            check(f"bucket {row.bucket_id} granted", row.points, row.bucket_granted)
        entries = by_order.get((row.program_id, row.order_id), {})
        check("ACCRUAL entries", row.points, entries.get("ACCRUAL", 0))
        # Expired points a return took back have no entry (the EXPIRY took them): at most.
        taken_back = -(entries.get("CLAWBACK", 0) + entries.get("DEBT", 0))
        if not 0 <= taken_back <= row.points_clawed_back:
            found.add(
                account,
                subject,
                "CLAWBACK + DEBT entries take back",
                f"0..{row.points_clawed_back}",
                taken_back,
            )


def _check_idempotency(connection: Connection, found: _Findings) -> None:
    """A claimed request id commits with its answer: one without is a half-done call."""
    k = idempotency_keys.c
    for program_id, request_id, method in connection.execute(
        select(k.program_id, k.request_id, k.method).where(k.response.is_(None))
    ):
        found.add(
            (program_id, "-"),
            f"request {request_id} ({method})",
            "claimed without a stored answer",
            "an answer",
            "none",
        )


def _check_reporting_totals(connection: Connection, found: _Findings) -> None:
    """The finance reports' running totals (PostgreSQL) against the buckets."""
    for d in totals_disagreements(connection):
        found.add((d.program_id, d.customer_id), "reporting totals", d.what, d.expected, d.found)


def _entries_by_order(connection: Connection) -> dict[Key, dict[str, int]]:
    """Sum of points of every order's ledger entries, by kind (whenever effective)."""
    e = ledger_entries.c
    found: dict[Key, dict[str, int]] = defaultdict(dict)
    for program_id, order_id, kind, points in connection.execute(
        select(e.program_id, e.order_id, e.kind, func.sum(e.points))
        .where(e.order_id.is_not(None))
        .group_by(e.program_id, e.order_id, e.kind)
    ):
        found[(program_id, order_id)][kind] = int(points)
    return found


def print_report(report: Report, write: Callable[[str], Any] = print) -> int:
    """Print each mismatch and the summary; the exit code: 0 agreed, 1 mismatches."""
    for mismatch in report.mismatches:
        write(f"MISMATCH {mismatch}")
    write(report.summary())
    return 0 if report.ok else 1
