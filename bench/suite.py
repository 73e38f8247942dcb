"""A whole run: baselines, then every workload × concurrency on each backend, then scale."""

import contextlib
import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import inprocess, profile, reporting, seed
from bench.cells import START_DELAY, Cell, measure, split
from bench.explain import explain_hot_queries
from bench.payloads import Templates
from bench.processes import Server, fresh_postgres, migrate
from loyalty.v1 import redemption_service_pb2 as pb
from pricing.program import load_program

PROGRAMS = Path(__file__).resolve().parents[1] / "programs"


@dataclass
class Options:
    backends: list[str]
    workloads: list[str]
    concurrency: list[int]
    workers: list[int]
    scale: list[int]
    scale_concurrency: list[int]
    accounts: int
    clients: int
    duration: float
    warmup: float
    pool_size: int
    program: str
    postgres_url: str
    out: Path
    keep: bool = False
    profile: bool = False
    reporting: list[int] = field(default_factory=list)  # account counts for the finance reports


class Suite:
    def __init__(self, options: Options) -> None:
        self.o = options
        self.cells: list[Cell] = []
        self.explains: dict[str, list[dict[str, Any]]] = {}
        self.reporting: list[dict[str, Any]] = []
        self.texts_us: dict[str, float] = {}  # per target: what the texts add to a quote
        self.run_id = uuid.uuid4().hex[:8]
        self.sources = sorted(load_program(PROGRAMS / f"{options.program}.toml").sources)
        self.points = 0
        self.database: str | None = None  # the PostgreSQL database in use, for its CPU
        self.echo_server: Server | None = None
        self.bare_accounts: list[str] = []
        options.out.mkdir(parents=True, exist_ok=True)
        self.log = options.out / "servers.log"

    def say(self, text: str) -> None:
        print(time.strftime("%H:%M:%S"), text, flush=True)

    def record(self, cell: Cell) -> Cell:
        self.cells.append(cell)
        errors = f" errors={cell.errors} {cell.error_sample[:120]}" if cell.errors else ""
        self.say(
            f"{cell.target:>12} w={cell.workers} {cell.workload:<10} c={cell.concurrency:<3}"
            f" {cell.rps:>8.1f}/s p50={cell.p50_ms:.2f} p99={cell.p99_ms:.2f} ms"
            f" server={cell.server_cpu_ms:.3f} db={cell.db_cpu_ms:.3f}+{cell.db_shared_cpu_ms:.3f}"
            f" gen={cell.gen_cpu_ms:.3f} ms/req ({cell.gen_cores} cores){errors}"
        )
        return cell

    def grpc_cell(
        self,
        server: Server,
        *,
        target: str,
        workers: int,
        workload: str,
        concurrency: int,
        accounts: list[str],
        orders: list[str] | None = None,
        beside: str = "",
    ) -> Cell:
        specs = [
            {
                "target": server.address,
                "workload": {"apply-hot": "apply", "quote-plain": "quote"}.get(workload, workload),
                "slots": slots,
                "slot_offset": offset,
                "total_slots": concurrency,
                "accounts": accounts,
                "orders": orders or [],
                "run_id": f"{self.run_id}-{target}-{workers}-{workload}-{concurrency}",
                "program_id": self.o.program,
                "points": self.points,
            }
            for slots, offset in split(concurrency, self.o.clients)
        ]
        spy = None
        if self.o.profile:
            name = f"{target}-w{workers}-{workload}-c{concurrency}.txt"
            spy = profile.record(
                server.pid,
                seconds=START_DELAY + self.o.warmup + self.o.duration,
                output=self.o.out / "profiles" / name,
            )
        try:
            cell = self._grpc_measure(server, target, workers, workload, concurrency, specs)
            cell.beside = beside
            return self.record(cell)
        finally:
            if spy is not None:
                spy.wait()

    def _grpc_measure(
        self,
        server: Server,
        target: str,
        workers: int,
        workload: str,
        concurrency: int,
        specs: list[dict[str, Any]],
    ) -> Cell:
        return measure(
            target=target,
            workers=workers,
            workload=workload,
            concurrency=concurrency,
            specs=specs,
            module="bench.load",
            server_pids=[server.pid],
            warmup=self.o.warmup,
            duration=self.o.duration,
            database=self.database,
        )

    def find_points(self, server: Server, customer: str) -> int:
        """What to apply: the quote's maximum for the cart (all-or-nothing programs need it)."""
        return server.points_to_apply(self.o.program, customer)

    # -- the baselines --------------------------------------------------------------------

    def echo(self, concurrency: int, *, beside: str) -> None:
        """One echo cell, measured right before the cell it is the ceiling for."""
        assert self.echo_server is not None
        self.grpc_cell(
            self.echo_server, target="echo", workers=1, workload="echo", concurrency=concurrency,
            accounts=["echo"], beside=beside,
        )  # fmt: skip

    def seed_bare(self, url: str) -> None:
        count = max(self.o.concurrency) * 4
        seed.seed(url, program_id=self.o.program, sources=self.sources, prefix="bare-", count=count)
        self.bare_accounts = seed.customer_ids("bare-", count)

    def bare(self, url: str, c: int, *, beside: str) -> None:
        """One bare psycopg cell, measured right before the apply cell it is the ceiling for."""
        accounts = self.bare_accounts
        specs = [
            {
                "url": url,
                "program_id": self.o.program,
                "accounts": accounts,
                "threads": slots,
                "slot_offset": offset,
                "total_slots": c,
                "points": 100,
                "lines": 20,
                "run_id": f"{self.run_id}-bare-{c}",
            }
            for slots, offset in split(c, self.o.clients)
        ]
        cell = measure(
            target="psycopg", workers=0, workload="apply", concurrency=c, specs=specs,
            module="bench.bare", server_pids=[], warmup=self.o.warmup,
            duration=self.o.duration, database=self.database,
        )  # fmt: skip
        cell.beside = beside
        self.record(cell)

    # -- the service ------------------------------------------------------------------------

    def service(self, url: str, *, target: str, workers: int) -> None:
        n = self.o.accounts
        prefix = f"{target}-w{workers}-"
        # With history: a past redemption per account, so the planner's statistics (taken at
        # the seed; this machine's PostgreSQL runs with autovacuum off) know that redemptions
        # is not empty. A generic plan cached while it looked empty scans it on every call.
        seed.seed(
            url, program_id=self.o.program, sources=self.sources, prefix=prefix, count=n,
            history=True,
        )  # fmt: skip
        hot = f"{prefix}hot"
        seed.seed(
            url, program_id=self.o.program, sources=self.sources, prefix=hot, count=1,
            points=2_000_000,
        )  # fmt: skip
        accounts = seed.customer_ids(prefix, n)
        self.say(f"{target}: {workers} worker(s), {n} accounts of 20 buckets")
        server = Server.loyalty(
            url, workers=workers, pool_size=self.o.pool_size, log_path=self.log
        ).start()
        plain = None
        if "quote-plain" in self.o.workloads:
            plain = Server.loyalty(
                url, workers=workers, pool_size=self.o.pool_size, log_path=self.log,
                explanations=False,
            ).start()  # fmt: skip
        if "quote" in self.o.workloads and workers == 1:
            self.texts_us[target] = self.texts_cost(url, accounts[0])
        try:
            self.points = self.find_points(server, accounts[0])
            applied: list[str] = []
            for workload in self.o.workloads:
                if workload == "quote-plain":
                    continue  # measured right after each quote cell, below
                for c in self.o.concurrency:
                    if workload == "reverse":
                        share = applied[: len(applied) // len(self.o.concurrency)]
                        applied = applied[len(share) :]
                        cell = self.grpc_cell(
                            server, target=target, workers=workers, workload=workload,
                            concurrency=c, accounts=accounts, orders=share,
                        )  # fmt: skip
                        continue
                    label = f"{target} {workers}w {workload}"
                    if workload == "quote" and self.echo_server is not None and workers == 1:
                        self.echo(c, beside=label)
                    if workload == "apply" and target == "postgres" and c > 1:
                        self.bare(url, c, beside=label)
                    who = [hot + "0"] if workload == "apply-hot" else accounts
                    cell = self.grpc_cell(
                        server, target=target, workers=workers, workload=workload,
                        concurrency=c, accounts=who,
                    )  # fmt: skip
                    if workload == "apply":
                        applied += cell.applied
                    if workload == "quote" and plain is not None:
                        self.grpc_cell(
                            plain, target=target, workers=workers, workload="quote-plain",
                            concurrency=c, accounts=who,
                        )  # fmt: skip
        finally:
            server.stop()
            if plain is not None:
                plain.stop()

    def texts_cost(self, url: str, customer: str) -> float:
        """µs the texts add to one quote's answer, built alone (bench/inprocess.py)."""
        templates = Templates.build(program_id=self.o.program, points=1)
        request = pb.QuoteRedemptionRequest.FromString(templates.quote_for(customer))
        us = inprocess.explanation_us(inprocess.servicer(url, explanations=True), request)
        self.say(f"the texts of a quote: {us:.1f} µs")
        return us

    def scale(self) -> None:
        """The same quote and apply at each account count: flat means the indexes do their job.

        Every database is loaded first and served at once, and the cells alternate between
        them (1k, 1M, 1k, 1M ...), so that the machine's drift hits both alike.
        """
        with contextlib.ExitStack() as stack:
            served = []
            for n in self.o.scale:
                url = stack.enter_context(fresh_postgres(self.o.postgres_url, keep=self.o.keep))
                migrate(url, log_path=self.log)
                self.say(f"scale: loading {n} accounts (20 buckets and ledger entries, history)")
                began = time.monotonic()
                seed.seed(
                    url, program_id=self.o.program, sources=self.sources, prefix="s-",
                    count=n, history=True,
                )  # fmt: skip
                self.say(f"scale: loaded in {time.monotonic() - began:.0f} s")
                step = max(1, n // 1000)  # the measured accounts spread over the key range
                accounts = [f"s-{i}" for i in range(0, n, step)][:1000]
                server = Server.loyalty(
                    url, workers=1, pool_size=self.o.pool_size, log_path=self.log
                ).start()
                stack.callback(server.stop)
                served.append((f"postgres-{n}", url, accounts, server))
            for workload in ("quote", "apply"):
                for c in self.o.scale_concurrency:
                    for label, url, accounts, server in served:
                        self.database = url.rpartition("/")[2]
                        self.points = self.find_points(server, accounts[0])
                        self.grpc_cell(
                            server, target=label, workers=1, workload=workload,
                            concurrency=c, accounts=accounts,
                        )  # fmt: skip
            for label, url, accounts, server in served:
                server.stop()
                self.explains[label] = explain_hot_queries(
                    url, program_id=self.o.program, customer_id=accounts[len(accounts) // 2]
                )

    def run(self) -> None:
        self.echo_server = Server.echo(log_path=self.log).start()
        try:
            self._run()
        finally:
            self.echo_server.stop()

    def _run(self) -> None:
        for backend in self.o.backends:
            if backend == "sqlite":
                self.database = None
                path = self.o.out / f"sqlite-{self.run_id}.sqlite3"
                url = f"sqlite:///{path}"
                migrate(url, log_path=self.log)
                self.service(url, target="sqlite", workers=1)
                continue
            for workers in self.o.workers:
                with fresh_postgres(self.o.postgres_url, keep=self.o.keep) as url:
                    self.database = url.rpartition("/")[2]
                    migrate(url, log_path=self.log)
                    self.seed_bare(url)
                    self.service(url, target="postgres", workers=workers)
        if self.o.scale:
            self.scale()
        if self.o.reporting:
            self.say(f"reporting: GetLiability and a one-year roll-forward at {self.o.reporting}")
            self.reporting = reporting.run(
                self.o.reporting, admin_url=self.o.postgres_url, out=self.o.out, keep=self.o.keep
            )

    def save(self, meta: dict[str, Any]) -> Path:
        path = self.o.out / "results.json"
        data = {
            "meta": meta,
            "cells": [c.row() for c in self.cells],
            "explain": self.explains,
            "reporting": self.reporting,
            "texts": self.texts_us,
        }
        path.write_text(json.dumps(data, indent=1))
        return path
