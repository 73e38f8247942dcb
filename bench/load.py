"""One load-generator process: `slots` calls in flight in a closed loop over one channel.

Run by the orchestrator as `python -m bench.load` with a JSON spec on stdin; prints a
JSON result on stdout. Calls go out as pre-serialized bytes and answers stay bytes, so
the generator spends its CPU on gRPC itself, not on building 20-line carts.
"""

import asyncio
import json
import resource
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc

from bench.payloads import APPLY, QUOTE, REVERSE, Templates

CHANNELS = 4


@dataclass
class Spec:
    target: str
    workload: str  # quote | apply | reverse | mix | echo
    slots: int
    slot_offset: int
    total_slots: int
    accounts: list[str]
    orders: list[str]
    run_id: str
    program_id: str
    points: int
    start_at: float  # time.time() at which calls begin (warm-up)
    warmup: float
    duration: float
    reverse_every: int = 4  # the mix reverses every n-th checkout's order


@dataclass
class Tally:
    latencies_us: list[int] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    error_sample: str = ""
    applied: list[str] = field(default_factory=list)
    exhausted_at: float = 0.0


class Generator:
    def __init__(self, spec: Spec, channels: list[grpc.aio.Channel]) -> None:
        self.spec = spec
        self.templates = Templates.build(program_id=spec.program_id, points=spec.points)
        # Slot i calls over channel i % n: several TCP connections, so that SO_REUSEPORT
        # can spread them over the server's worker processes.
        self.calls = [
            {
                path: channel.unary_unary(path, request_serializer=None, response_deserializer=None)
                for path in (QUOTE, APPLY, REVERSE)
            }
            for channel in channels
        ]
        self.tally = Tally()
        # Wall-clock instants as perf_counter values (monotonic, sub-microsecond).
        offset = time.perf_counter() - time.time()
        self.window_start = spec.start_at + spec.warmup + offset
        self.window_end = self.window_start + spec.duration

    async def call(self, path: str, payload: bytes, slot: int) -> bool:
        began = time.perf_counter()
        try:
            await self.calls[slot % len(self.calls)][path](payload, timeout=30)
            ok = True
        except grpc.aio.AioRpcError as exc:
            ok = False
            name = exc.code().name
            if self.window_start <= began:
                self.tally.errors[name] = self.tally.errors.get(name, 0) + 1
                self.tally.error_sample = self.tally.error_sample or f"{name}: {exc.details()}"
        done = time.perf_counter()
        if ok and self.window_start <= began and done < self.window_end:
            self.tally.latencies_us.append(int((done - began) * 1e6))
        return ok

    def running(self) -> bool:
        return time.perf_counter() < self.window_end

    def mine(self, items: list[str], slot: int) -> list[str]:
        return items[self.spec.slot_offset + slot :: self.spec.total_slots]

    async def quote_loop(self, slot: int) -> None:
        accounts = self.mine(self.spec.accounts, slot) or self.spec.accounts
        payloads = [self.templates.quote_for(a) for a in accounts]
        n = 0
        while self.running():
            await self.call(QUOTE, payloads[n % len(payloads)], slot)
            n += 1

    async def apply_loop(self, slot: int) -> None:
        accounts = self.mine(self.spec.accounts, slot) or self.spec.accounts
        g = self.spec.slot_offset + slot
        n = 0
        while self.running():
            order = f"{self.spec.run_id}-{g}-{n}"
            payload = self.templates.apply_for(
                customer_id=accounts[n % len(accounts)], order_id=order
            )
            if await self.call(APPLY, payload, slot):
                self.tally.applied.append(order)
            n += 1

    async def reverse_loop(self, slot: int) -> None:
        for order in self.mine(self.spec.orders, slot):
            if not self.running():
                return
            await self.call(REVERSE, self.templates.reverse_for(order), slot)
        self.tally.exhausted_at = max(self.tally.exhausted_at, time.perf_counter())

    async def mix_loop(self, slot: int) -> None:
        """A checkout: quote, apply what was quoted; every n-th time, return an earlier order."""
        accounts = self.mine(self.spec.accounts, slot) or self.spec.accounts
        g = self.spec.slot_offset + slot
        placed: list[str] = []
        n = 0
        while self.running():
            customer = accounts[n % len(accounts)]
            await self.call(QUOTE, self.templates.quote_for(customer), slot)
            order = f"{self.spec.run_id}-{g}-{n}"
            payload = self.templates.apply_for(customer_id=customer, order_id=order)
            if await self.call(APPLY, payload, slot):
                placed.append(order)
            if n % self.spec.reverse_every == self.spec.reverse_every - 1 and len(placed) > 1:
                await self.call(REVERSE, self.templates.reverse_for(placed[-2]), slot)
            n += 1

    def loop(self) -> Callable[[int], Awaitable[None]]:
        return {
            "quote": self.quote_loop,
            "echo": self.quote_loop,
            "apply": self.apply_loop,
            "reverse": self.reverse_loop,
            "mix": self.mix_loop,
        }[self.spec.workload]


async def _cpu_in_window(gen: Generator) -> float:
    await asyncio.sleep(max(0.0, gen.window_start - time.perf_counter()))
    before = resource.getrusage(resource.RUSAGE_SELF)
    await asyncio.sleep(max(0.0, gen.window_end - time.perf_counter()))
    after = resource.getrusage(resource.RUSAGE_SELF)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


async def run(spec: Spec) -> dict[str, Any]:
    # Separate connections (no shared subchannel), at most 4 per generator process.
    options = [("grpc.use_local_subchannel_pool", 1)]
    channels = [
        grpc.aio.insecure_channel(spec.target, options=options)
        for _ in range(min(spec.slots, CHANNELS))
    ]
    try:
        for channel in channels:
            await channel.channel_ready()
        return await _drive(spec, Generator(spec, channels))
    finally:
        for channel in channels:
            await channel.close()


async def _drive(spec: Spec, gen: Generator) -> dict[str, Any]:
    await asyncio.sleep(max(0.0, spec.start_at - time.time()))
    loop = gen.loop()
    cpu_task = asyncio.create_task(_cpu_in_window(gen))
    await asyncio.gather(*(loop(slot) for slot in range(spec.slots)))
    cpu = await cpu_task
    t = gen.tally
    active = spec.duration
    if t.exhausted_at:
        active = max(0.001, min(spec.duration, t.exhausted_at - gen.window_start))
    return {
        "latencies_us": t.latencies_us,
        "errors": t.errors,
        "error_sample": t.error_sample,
        "applied": t.applied,
        "cpu_seconds": cpu,
        "active_seconds": active,
    }


def main() -> None:
    spec = Spec(**json.load(sys.stdin))
    json.dump(asyncio.run(run(spec)), sys.stdout)


if __name__ == "__main__":
    main()
