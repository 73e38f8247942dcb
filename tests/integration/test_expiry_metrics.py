"""The expiry job counts what it wrote off, per program (in-process, on SQLite)."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client import CollectorRegistry

from pricing.program import load_programs
from server.metrics import Metrics
from server.service.commands import GrantPoints, Idempotency
from server.service.deps import Deps
from server.service.expire import expire_points
from server.service.grant import grant_points
from server.store.db import Database, create_database_engine
from server.store.migrate import migrate

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def test_expired_points_are_counted_once(tmp_path: Path) -> None:
    engine = create_database_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}", pool_size=2)
    migrate(engine)
    metrics = Metrics(CollectorRegistry())
    deps = Deps(Database(engine), load_programs(ROOT / "programs"), metrics)
    for n, points in enumerate((120, 30)):  # two promo grants that expire after a day
        grant_points(
            deps,
            GrantPoints(
                key=Idempotency(f"g{n}", f"g{n}".encode()),
                program_id="stomatorg",
                customer_id=f"c{n}",
                points=points,
                source="promo",
                available_at=None,
                expires_at=T0 + timedelta(days=1),
                reason="campaign",
            ),
            now=T0,
            render=lambda result: b"",
        )
    later = T0 + timedelta(days=2)
    first = expire_points(deps.db, now=later, metrics=metrics)
    second = expire_points(deps.db, now=later, metrics=metrics)
    assert (first.accounts, first.points) == (2, 150)  # 120 + 30
    assert (second.accounts, second.points) == (0, 0)
    sample = metrics.registry.get_sample_value(
        "loyalty_points_expired_total", {"program": "stomatorg"}
    )
    assert sample == 150
    engine.dispose()
