"""CPU per call of the service in one process, without gRPC: `python -m bench.inprocess`.

The servicer methods are awaited directly (with a stand-in for gRPC's context), on a fresh
PostgreSQL database seeded like the bench's, one call at a time: the figure is the process
CPU (every thread) per call, the part of a request's server CPU that is this code's rather
than gRPC's. It moves far less with the machine's load than a cell of `python -m bench`,
so each hot-path change can be measured before and after (docs/benchmarks.md).
"""

import argparse
import asyncio
import time
import timeit
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import seed
from bench.payloads import Templates
from bench.processes import fresh_postgres, migrate
from loyalty.v1 import redemption_service_pb2 as pb
from pricing.program import load_programs
from server import event_loop
from server.api import convert
from server.api.edge import Edge, Readiness
from server.api.redemption import RedemptionServicer
from server.api.workers import Workers
from server.app import database_engine
from server.config import parse
from server.metrics import Metrics
from server.service.deps import Deps
from server.service.quote import quote_redemption
from server.store.db import Database
from server.store.loop_pool import LoopPool
from server.texts.explain import QuoteWords

PROGRAMS = Path(__file__).resolve().parents[1] / "programs"


class Context:
    """What the servicers ask of gRPC's ServicerContext."""

    def time_remaining(self) -> float:
        return 30.0

    def invocation_metadata(self) -> tuple[Any, ...]:
        return ()

    def set_trailing_metadata(self, metadata: Any) -> None:
        pass

    async def abort(self, code: Any, details: str, trailing: Any = None) -> None:
        raise RuntimeError(f"{code}: {details}")


async def _calls(servicer: RedemptionServicer, method: str, requests: list[Any]) -> float:
    """CPU µs per call: the least of five runs over a fifth of `requests` each (other work on
    the machine only ever adds to a run's figure)."""
    call = getattr(servicer, method)
    context = Context()
    fifth = max(1, len(requests) // 5)
    runs = []
    for start in range(0, fifth * 5, fifth):
        began = time.process_time()
        for request in requests[start : start + fifth]:
            await call(request, context)
        runs.append((time.process_time() - began) / fifth * 1e6)
    return min(runs)


def servicer(
    url: str, *, explanations: bool, loop: asyncio.AbstractEventLoop | None = None
) -> RedemptionServicer:
    """The servicer as the server builds it; with `loop`, quotes are read on it as the
    server reads them on PostgreSQL (server/store/loop_pool.py)."""
    _, config = parse(["--database-url", url, "--db-pool-size", "4"], env={})
    metrics = Metrics()
    engine = database_engine(config)
    database = Database(engine, observer=metrics, lock_timeout=config.db_lock_timeout)
    loop_pool = None
    if loop is not None and engine.dialect.name == "postgresql":
        loop_pool = LoopPool(engine, size=4, observer=metrics)
        loop.run_until_complete(loop_pool.open())
    readiness = Readiness()
    readiness.ready = True
    edge = Edge(
        Deps(database, load_programs(config.programs), metrics, loop_pool=loop_pool),
        pool=Workers(4),
        readiness=readiness,
        allow_clock_override=False,
        explanations=explanations,
    )
    return RedemptionServicer(edge)


def explanation_us(servicer: RedemptionServicer, request: Any, *, rounds: int = 2000) -> float:
    """µs the texts add to one quote's answer (docs/rules.md §10): the response built with
    and without them from the same decided quote, the least of five runs each."""
    edge = servicer.edge
    command = convert.quote_command(request)
    decided = quote_redemption(edge.deps, command, now=datetime.now(UTC))

    def build(words: bool) -> None:
        said = None
        if words:
            texts = edge.texts(Context(), command.program_id)  # type: ignore[arg-type]
            program = edge.deps.program(command.program_id)
            said = QuoteWords(texts, program, promo_code=command.cart.promo_code)
        convert.quote_response(decided, said).SerializeToString()

    def least(words: bool) -> float:
        runs = timeit.repeat(lambda: build(words), number=rounds, repeat=5)
        return min(runs) / rounds * 1e6

    return least(True) - least(False)


def run(
    url: str, *, program: str, calls: int, quotes_only: bool = False, applies_only: bool = False
) -> dict[str, float]:
    programs = load_programs(PROGRAMS)
    sources = sorted(programs[program].sources)
    seed.seed(url, program_id=program, sources=sources, prefix="p-", count=calls, history=True)
    accounts = seed.customer_ids("p-", calls)
    plain = Templates.build(program_id=program, points=1)
    quotes = [pb.QuoteRedemptionRequest.FromString(plain.quote_for(a)) for a in accounts]
    figures: dict[str, float] = {}
    loop = event_loop.new_loop()  # the server's (server/event_loop.py)
    servicers: list[RedemptionServicer] = []
    try:
        on = servicer(url, explanations=True, loop=loop)
        off = servicer(url, explanations=False, loop=loop)
        servicers += [on, off]
        answer = loop.run_until_complete(on.QuoteRedemption(quotes[0], Context()))
        points = answer.options[answer.recommended_option].max_points
        templates = Templates.build(program_id=program, points=points)
        applies = [
            pb.ApplyRedemptionRequest.FromString(
                templates.apply_for(customer_id=a, order_id=f"o-{a}")
            )
            for a in accounts
        ]
        reverses = [
            pb.ReverseRedemptionRequest.FromString(templates.reverse_for(f"o-{a}"))
            for a in accounts
        ]
        warm = max(1, calls // 10)
        for name, srv in (("quote", on), ("quote-plain", off))[: 1 if quotes_only else 2]:
            loop.run_until_complete(_calls(srv, "QuoteRedemption", quotes[:warm]))
            figures[name] = loop.run_until_complete(_calls(srv, "QuoteRedemption", quotes))
        if quotes_only:
            for _ in range(4):
                figures["quote"] = loop.run_until_complete(_calls(on, "QuoteRedemption", quotes))
            return figures
        figures["explanations"] = explanation_us(on, quotes[0])
        figures["apply"] = loop.run_until_complete(_calls(on, "ApplyRedemption", applies))
        if applies_only:
            return figures
        figures["reverse"] = loop.run_until_complete(_calls(on, "ReverseRedemption", reverses))
    finally:
        for pool in {s.edge.deps.loop_pool for s in servicers} - {None}:
            loop.run_until_complete(pool.close())  # type: ignore[union-attr]
        loop.close()
    return figures


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.inprocess", description=__doc__)
    p.add_argument("--program", default="denco")
    p.add_argument("--calls", type=int, default=500)
    p.add_argument("--quotes-only", action="store_true", help="quotes only (for a profile)")
    p.add_argument("--applies-only", action="store_true", help="applies only (for a profile)")
    p.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = p.parse_args()
    with fresh_postgres(args.postgres_url) as url:
        migrate(url, log_path=Path("/dev/null"))
        figures = run(
            url, program=args.program, calls=args.calls, quotes_only=args.quotes_only,
            applies_only=args.applies_only,
        )  # fmt: skip
    for name, us in figures.items():
        if name != "explanations":
            print(f"{name:<12} {us:8.1f} µs CPU per call")
    if args.quotes_only or args.applies_only:
        return
    q, plain = figures["quote"], figures["quote-plain"]
    print(f"quote - plain {q - plain:7.1f} µs (two runs' difference: noisy)")
    said = figures["explanations"]
    print(f"the texts alone: {said:.1f} µs = {said / q:.1%} of a quote's CPU in-process")


if __name__ == "__main__":
    main()
