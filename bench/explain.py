"""EXPLAIN ANALYZE of every statement a quote and an apply send, captured from the real code.

The use cases run in this process on an engine that records each statement; each one is
then explained (and rolled back) with the parameters it was sent with. A plan that reads
an index by the account's key stays flat as the tables grow; a Seq Scan would not.
"""

import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, event

from bench.payloads import Templates
from loyalty.v1 import redemption_service_pb2 as pb
from pricing.program import load_programs
from server.api import convert
from server.service.apply import apply_redemption
from server.service.deps import Deps
from server.service.quote import quote_redemption
from server.store.db import Database, create_database_engine

T = TypeVar("T")
PROGRAMS = Path(__file__).resolve().parents[1] / "programs"
_NODE = re.compile(r"(Index Only Scan|Index Scan|Bitmap Heap Scan|Bitmap Index Scan|Seq Scan|"
                   r"Insert|Update|Result|Nested Loop|Hash Join|Sort|Aggregate)[^(]*")  # fmt: skip


class _RolledBack(Database):
    """Runs a use case's transaction to its end, then rolls it back, so it can be replayed."""

    def transact(self, work: Callable[[Connection], T]) -> T:
        with self.engine.connect() as connection:
            transaction = connection.begin()
            try:
                return work(connection)
            finally:
                transaction.rollback()


def _capture(url: str, program_id: str, customer_id: str) -> list[tuple[str, str, Any]]:
    engine = create_database_engine(url, pool_size=1)
    seen: list[tuple[str, str, Any]] = []
    phase = ["quote"]

    def record(
        _conn: Any, _cursor: Any, statement: str, params: Any, _ctx: Any, many: bool
    ) -> None:
        seen.append((phase[0], statement, params[0] if many and params else params))

    event.listen(engine, "before_cursor_execute", record)
    deps = Deps(_RolledBack(engine), load_programs(PROGRAMS))
    now = datetime.now(UTC)
    templates = Templates.build(program_id=program_id, points=1)
    request = pb.QuoteRedemptionRequest.FromString(templates.quote_for(customer_id))
    quote = quote_redemption(deps, convert.quote_command(request), now=now)
    points = quote.options[quote.recommended].max_points
    phase[0] = "apply"
    templates = Templates.build(program_id=program_id, points=points)
    apply = pb.ApplyRedemptionRequest.FromString(
        templates.apply_for(customer_id=customer_id, order_id=f"explain-{uuid.uuid4().hex}")
    )
    apply_redemption(deps, convert.apply_command(apply), now=now, render=lambda _r: b"explained")
    engine.dispose()
    return seen


def _summary(phase: str, statement: str, plan: list[str]) -> dict[str, Any]:
    timing = next((line for line in plan if line.startswith("Execution Time")), "")
    nodes = [m.group(0).strip() for line in plan if (m := _NODE.search(line))]
    return {
        "phase": phase,
        "statement": " ".join(statement.split())[:160],
        "nodes": nodes,
        "execution_ms": float(timing.split(":")[1].split()[0]) if timing else 0.0,
        "seq_scan": any("Seq Scan" in n for n in nodes),
        "plan": plan,
    }


def explain_hot_queries(url: str, *, program_id: str, customer_id: str) -> list[dict[str, Any]]:
    """Each statement of one quote and one apply: its plan's scans and its execution time."""
    seen = _capture(url, program_id, customer_id)
    engine = create_database_engine(url, pool_size=1)
    out: list[dict[str, Any]] = []
    with engine.connect() as conn:
        # Each call's statements in one transaction, in order, as the call sent them; rolled back.
        for call in ("quote", "apply"):
            transaction = conn.begin()
            try:
                for phase, statement, params in seen:
                    verb = statement.lstrip().split(None, 1)[0].upper()
                    if phase != call or verb not in {"SELECT", "INSERT", "UPDATE", "WITH"}:
                        continue
                    rows = conn.exec_driver_sql(
                        "EXPLAIN (ANALYZE, BUFFERS, FORMAT TEXT) " + statement, params
                    ).all()
                    out.append(_summary(phase, statement, [r[0] for r in rows]))
            finally:
                transaction.rollback()
    engine.dispose()
    return out
