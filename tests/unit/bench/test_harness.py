"""The load generator's requests and its arithmetic (bench/)."""

from bench.cells import percentile, split
from bench.payloads import Templates
from bench.report import capacity
from loyalty.v1 import redemption_service_pb2 as pb


def test_an_apply_is_its_template_followed_by_its_ids() -> None:
    templates = Templates.build(program_id="denco", points=163)
    request = pb.ApplyRedemptionRequest.FromString(
        templates.apply_for(customer_id="c-1", order_id="o-9")
    )
    assert (request.program_id, request.customer_id, request.order_id) == ("denco", "c-1", "o-9")
    assert request.request_id == "o-9-apply"
    assert request.points == 163
    assert len(request.cart.lines) == 20


def test_a_quote_and_a_return_carry_their_ids() -> None:
    templates = Templates.build(program_id="denco", points=1)
    quote = pb.QuoteRedemptionRequest.FromString(templates.quote_for("c-2"))
    assert quote.customer_id == "c-2" and len(quote.cart.lines) == 20
    back = pb.ReverseRedemptionRequest.FromString(templates.reverse_for("o-3"))
    assert (back.order_id, back.request_id, len(back.lines)) == ("o-3", "o-3-return", 1)


def test_concurrency_splits_over_generator_processes() -> None:
    assert split(1, 2) == [(1, 0)]
    assert split(8, 2) == [(4, 0), (4, 4)]
    assert split(5, 2) == [(3, 0), (2, 3)]


def test_percentiles_are_nearest_rank_in_milliseconds() -> None:
    values = list(range(1_000, 101_000, 1_000))  # 1 … 100 ms
    assert percentile(values, 0.50) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([], 0.5) == 0.0


def test_capacity_is_requests_per_core_second_of_the_database_and_of_the_service() -> None:
    cells = [
        {"target": "postgres", "workers": 1, "workload": "apply", "concurrency": 16,
         "rps": 250.0, "server_cpu_ms": 4.0, "db_cpu_ms": 2.0, "db_shared_cpu_ms": 0.5},
        {"target": "sqlite", "workers": 1, "workload": "apply", "concurrency": 16,
         "rps": 300.0, "server_cpu_ms": 2.5, "db_cpu_ms": 0.0},
        {"target": "psycopg", "workers": 0, "workload": "apply", "concurrency": 16,
         "rps": 900.0, "server_cpu_ms": 0.0, "db_cpu_ms": 0.9},
    ]  # fmt: skip
    # PostgreSQL's backends: 2.0 ms per apply, so 1,000 / 2.0 = 500 applies per core-second
    # (the shared 0.5 ms is shown, not counted); the service: 1,000 / 4.0 = 250 per
    # core-second. SQLite has no server of its own; bare psycopg is not the service.
    assert capacity(cells) == [("postgres apply c16 (1w)", 250.0, 2.0, 0.5, 500.0, 250.0)]
