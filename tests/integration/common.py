"""Helpers for the integration tests: ids, carts, requests, errors, concurrent firing."""

import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

import grpc
import psycopg
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from sqlalchemy import Executable, Row, select

from loyalty.v1 import account_service_pb2 as account_pb
from loyalty.v1 import cart_pb2, redemption_pb2
from loyalty.v1 import redemption_service_pb2 as redemption_pb
from pricing.program import load_programs
from server.service import commands
from server.service.deps import Deps
from server.store.db import Database, create_database_engine
from server.store.migrate import migrate
from server.store.schema import metadata
from tests.support.databases import fresh_postgres
from tests.support.polling import wait_until

PROGRAMS = Path(__file__).resolve().parents[2] / "programs"
PROGRAM = "stomatorg"  # base tier: redeem cap 3 % of the eligible base; 1 point = 100 minor
RPC_TIMEOUT = 30.0

T = TypeVar("T")


def ts(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


class Ids:
    """Ids unique to one test: a customer, and numbered orders and requests."""

    def __init__(self, label: str) -> None:
        self.tag = f"{label}-{uuid.uuid4().hex[:10]}"
        self.customer = f"cust-{self.tag}"

    def order(self, n: object = 0) -> str:
        return f"order-{self.tag}-{n}"

    def request(self, n: object = 0) -> str:
        return f"req-{self.tag}-{n}"


def cart(*lines: tuple[str, int, int]) -> cart_pb2.Cart:
    """A RUB cart of goods lines `(line_id, quantity, unit_price_minor)`, no delivery."""
    return cart_pb2.Cart(
        currency="RUB",
        lines=[
            cart_pb2.CartLine(
                line_id=line_id,
                sku=f"sku-{line_id}",
                category="dental",
                kind=cart_pb2.LINE_KIND_GOODS,
                quantity=quantity,
                unit_price_minor=unit_price,
            )
            for line_id, quantity, unit_price in lines
        ],
    )


def grant_request(
    ids: Ids, *, points: int, as_of: datetime, n: object = "grant", source: str = "loyalty"
) -> account_pb.GrantPointsRequest:
    return account_pb.GrantPointsRequest(
        request_id=ids.request(n),
        program_id=PROGRAM,
        customer_id=ids.customer,
        points=points,
        source=source,
        reason="integration test",
        as_of=ts(as_of),
    )


def apply_request(
    ids: Ids, *, order: object, request: object, basket: cart_pb2.Cart, points: int, as_of: datetime
) -> redemption_pb.ApplyRedemptionRequest:
    return redemption_pb.ApplyRedemptionRequest(
        request_id=ids.request(request),
        program_id=PROGRAM,
        customer_id=ids.customer,
        order_id=ids.order(order),
        cart=basket,
        points=points,
        as_of=ts(as_of),
    )


def reverse_request(
    ids: Ids, *, order: object, request: object, lines: Sequence[tuple[str, int]], as_of: datetime
) -> redemption_pb.ReverseRedemptionRequest:
    return redemption_pb.ReverseRedemptionRequest(
        request_id=ids.request(request),
        program_id=PROGRAM,
        order_id=ids.order(order),
        lines=[redemption_pb2.ReturnedLine(line_id=i, quantity=q) for i, q in lines],
        reason="returned",
        as_of=ts(as_of),
    )


def account_request(ids: Ids, *, as_of: datetime) -> account_pb.GetAccountRequest:
    return account_pb.GetAccountRequest(
        program_id=PROGRAM, customer_id=ids.customer, as_of=ts(as_of)
    )


# ---- errors ------------------------------------------------------------------------


def error_info(error: grpc.RpcError) -> error_details_pb2.ErrorInfo:
    """The `google.rpc.ErrorInfo` a failed call carries (fails the test if it has none)."""
    status = rpc_status.from_call(error)
    assert status is not None, f"no rich status on {error}"
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info
    raise AssertionError(f"no ErrorInfo in {error}")


def failure(error: grpc.RpcError) -> tuple[grpc.StatusCode, str]:
    """`(status code, ErrorInfo reason)` of a failed call."""
    info = error_info(error)
    assert info.domain == "loyalty", info
    return error.code(), info.reason


# ---- raw calls ---------------------------------------------------------------------


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


def raw_method(
    channel: grpc.Channel, service: str, method: str
) -> "grpc.UnaryUnaryMultiCallable[Message, bytes]":
    """A unary method whose response is the exact bytes the server sent (no parsing)."""
    return channel.unary_unary(
        f"/loyalty.v1.{service}/{method}",
        request_serializer=_serialize,
        response_deserializer=None,
    )


# ---- concurrency -------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome(Generic[T]):
    value: T | None = None
    error: grpc.RpcError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _outcome(call: Callable[[], T]) -> Outcome[T]:
    try:
        return Outcome(value=call())
    except grpc.RpcError as error:
        return Outcome(error=error)


@contextmanager
def accounts_locked(url: str) -> Iterator[Callable[..., None]]:
    """Hold every account row locked (PostgreSQL); yields `waiting(n)`, which returns once
    `n` other sessions of this database wait for a row lock (calling `still_running()`, which
    may fail the test, while it waits). Leaving releases them all."""
    with psycopg.connect(url) as gate:
        gate.execute("SELECT 1 FROM accounts FOR UPDATE")

        def row_lock_waiters() -> int:
            with psycopg.connect(url, autocommit=True) as probe:
                row = probe.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock' AND wait_event IN ('transactionid', 'tuple')"
                ).fetchone()
            return 0 if row is None else int(row[0])

        def waiting(n: int, still_running: Callable[[], None] = lambda: None) -> None:
            def there() -> bool:
                still_running()
                return row_lock_waiters() >= n

            wait_until(there, what=f"{n} sessions waiting for the gate")

        yield waiting
        gate.commit()


def queued_at_the_lock(
    url: str, calls: Sequence[Callable[[], T]], *, timeout: float = 120
) -> list[Outcome[T]]:
    """Run the calls so that they take the account lock in the order given.

    The test holds every account row locked; each call starts once the previous one waits
    for the lock, then the lock is released. PostgreSQL grants a row lock to its waiters
    first come, first served, so the order is decided by the test, not by timing.
    """
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        futures = []
        with accounts_locked(url) as waiting:
            for n, call in enumerate(calls, start=1):
                futures.append(pool.submit(_outcome, call))
                waiting(n)
        return [future.result(timeout=timeout) for future in futures]


def fire_together(calls: Sequence[Callable[[], T]], *, timeout: float = 60) -> list[Outcome[T]]:
    """Run every call on its own thread, all released at once by a barrier."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], T]) -> Outcome[T]:
        barrier.wait(timeout=timeout)
        return _outcome(call)

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        futures = [pool.submit(run, call) for call in calls]
        return [future.result(timeout=timeout) for future in futures]


# ---- the database, directly -----------------------------------------------------


def fetch(url: str, statement: Executable) -> list[Row[Any]]:
    """Run one read statement on the database at `url` (SQLAlchemy Core) and return its rows."""
    engine = create_database_engine(url, pool_size=1)
    try:
        with engine.connect() as connection:
            return list(connection.execute(statement).all())
    finally:
        engine.dispose()


def snapshot(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in a stable order: to prove a call changed nothing."""
    engine = create_database_engine(url, pool_size=1)
    try:
        with engine.connect() as connection:
            return {
                table.name: [
                    tuple(row)
                    for row in connection.execute(
                        select(table).order_by(*table.primary_key.columns)
                    )
                ]
                for table in metadata.sorted_tables
            }
    finally:
        engine.dispose()


@contextmanager
def postgres_deps() -> Iterator[Deps]:
    """The use cases' dependencies on a fresh PostgreSQL database of one connection (every
    call's statements are prepared in the one session), with the shipped programs."""
    with fresh_postgres() as url:
        engine = create_database_engine(url, pool_size=1)
        migrate(engine)
        yield Deps(Database(engine), load_programs(PROGRAMS))
        engine.dispose()


def key(name: str) -> commands.Idempotency:
    """A request id whose fingerprint is its name."""
    return commands.Idempotency(name, name.encode())
