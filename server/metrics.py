"""Prometheus metrics: the standard gRPC server metrics and the domain's counters.

The gRPC metrics follow the names of go-grpc-prometheus / py-grpc-prometheus
(`grpc_server_started_total`, `grpc_server_handled_total`,
`grpc_server_handling_seconds`) so the usual dashboards work unchanged.
"""

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

_GRPC_LABELS = ("grpc_type", "grpc_service", "grpc_method")
# Unary calls here take about a millisecond; the buckets resolve that and a slow database.
_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


class Metrics:
    """Every metric the service exports, on one registry (tests make their own)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.started = Counter(
            "grpc_server_started_total", "RPCs started on the server.", _GRPC_LABELS, registry=r
        )
        self.handled = Counter(
            "grpc_server_handled_total",
            "RPCs completed on the server, by status code.",
            (*_GRPC_LABELS, "grpc_code"),
            registry=r,
        )
        self.handling = Histogram(
            "grpc_server_handling_seconds",
            "Time to handle an RPC on the server.",
            _GRPC_LABELS,
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )

        def points(name: str, what: str) -> Counter:
            return Counter(f"loyalty_points_{name}_total", what, ("program",), registry=r)

        self.quoted = points("quoted", "Maximum points offered by quotes (recommended option).")
        self.redeemed = points("redeemed", "Points spent at once by ApplyRedemption.")
        self.held = points("held", "Points held by ApplyRedemption with hold_seconds.")
        self.captured = points("captured", "Held points made spent by CaptureRedemption.")
        self.released = points("released", "Held points given back by a release.")
        self.reversed = points("reversed", "Spent points given back by ReverseRedemption.")
        self.accrued = points("accrued", "Points earned by AccrueOrder.")
        self.granted = points("granted", "Points credited by GrantPoints.")
        self.clawed_back = points(
            "clawed_back", "Earned points taken back by returns (from buckets or as debt)."
        )
        self.expired = points("expired", "Points written off by the expiry job.")
        self.replays = Counter(
            "loyalty_idempotent_replays_total",
            "Mutations answered from their stored first answer.",
            ("method",),
            registry=r,
        )
        self.db_errors = Counter(
            "loyalty_database_errors_total",
            "Database failures a caller saw (unavailable, or conflicts past the retries).",
            ("kind",),
            registry=r,
        )
        self.db_retries = Counter(
            "loyalty_database_retries_total",
            "Transactions retried inside the server after a conflict or a lost connection.",
            ("kind",),
            registry=r,
        )

    def retried(self, kind: str) -> None:
        self.db_retries.labels(kind).inc()

    def failed(self, kind: str) -> None:
        self.db_errors.labels(kind).inc()

    def serve(self, address: str) -> int:
        """Expose /metrics over HTTP on HOST:PORT (a daemon thread); returns the port bound."""
        host, _, port = address.rpartition(":")
        http, _ = start_http_server(int(port), addr=host or "0.0.0.0", registry=self.registry)
        return int(http.server_port)
