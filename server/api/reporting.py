"""ReportingService: proto → use case → proto, nothing else (docs/rules.md §8, §11)."""

from typing import Any

import grpc

from loyalty.v1 import reporting_service_pb2 as pb
from loyalty.v1 import reporting_service_pb2_grpc as pb_grpc
from pricing.bounds import clamp_int64
from pricing.liability import BANDS, money
from server.api import convert
from server.api.edge import Edge, rpc
from server.service.reporting import (
    LiabilityReport,
    RollForwardReport,
    get_liability,
    get_roll_forward,
)

Context = grpc.aio.ServicerContext[Any, Any]


class ReportingServicer(pb_grpc.ReportingServiceServicer):
    SERVICE = pb.DESCRIPTOR.services_by_name["ReportingService"].full_name

    def __init__(self, edge: Edge) -> None:
        self.edge = edge

    @rpc
    async def GetLiability(
        self, request: pb.GetLiabilityRequest, context: Context
    ) -> pb.GetLiabilityResponse:
        convert.ids(request, "program_id")
        now = self.edge.now(request)
        report = await self.edge.run(
            get_liability, self.edge.deps, program_id=request.program_id, now=now
        )
        return liability_response(report)

    @rpc
    async def GetLiabilityRollForward(
        self, request: pb.GetLiabilityRollForwardRequest, context: Context
    ) -> pb.GetLiabilityRollForwardResponse:
        convert.ids(request, "program_id")
        now = self.edge.now(request)
        report = await self.edge.run(
            get_roll_forward,
            self.edge.deps,
            program_id=request.program_id,
            start=convert.optional_instant(request, "start_time"),
            end=convert.optional_instant(request, "end_time"),
            now=now,
        )
        return roll_forward_response(report)


def liability_response(report: LiabilityReport) -> pb.GetLiabilityResponse:
    f, value = report.figures, report.program.point_value_minor
    c = clamp_int64

    def worth(points: int) -> int:
        return money(points, point_value_minor=value)

    return pb.GetLiabilityResponse(
        spendable_points=c(f.spendable),
        pending_points=c(f.pending),
        held_points=c(f.held),
        debt_points=c(f.debt),
        by_source={source: c(points) for source, points in f.by_source.items()},
        expiry_bands=[
            pb.ExpiryBand(
                from_days=band.from_days,
                to_days=band.to_days,
                never_expires=band.never_expires,
                points=c(points),
                value_minor=worth(points),
            )
            for band, points in zip(BANDS, f.bands, strict=True)
        ],
        value_minor=worth(f.spendable),
        customers=f.customers,
        as_of=convert.stamp(report.now),
        currency=report.program.currency,
        point_value_minor=value,
        pending_value_minor=worth(f.pending),
        held_value_minor=worth(f.held),
        debt_value_minor=worth(f.debt),
        customers_in_debt=f.customers_in_debt,
    )


def roll_forward_response(report: RollForwardReport) -> pb.GetLiabilityRollForwardResponse:
    f, value = report.figures, report.program.point_value_minor
    c = clamp_int64

    def worth(points: int) -> int:
        return money(points, point_value_minor=value)

    return pb.GetLiabilityRollForwardResponse(
        opening_points=c(f.opening),
        issued={source: c(points) for source, points in f.issued.items()},
        reinstated_points=c(f.reinstated),
        redeemed_points=c(f.redeemed),
        expired_points=c(f.expired),
        clawed_back_points=c(f.clawed_back),
        debt_incurred_points=c(f.debt_incurred),
        closing_points=c(f.closing),
        cohorts=[
            pb.LiabilityCohort(
                month=k.month,
                issued_points=c(k.issued),
                redeemed_points=c(k.redeemed),
                expired_points=c(k.expired),
                outstanding_points=c(k.outstanding),
                issued_value_minor=worth(k.issued),
                redeemed_value_minor=worth(k.redeemed),
                expired_value_minor=worth(k.expired),
                outstanding_value_minor=worth(k.outstanding),
            )
            for k in f.cohorts
        ],
        start_time=convert.stamp(report.window.start),
        end_time=convert.stamp(report.window.end),
        currency=report.program.currency,
        point_value_minor=value,
        opening_value_minor=worth(f.opening),
        issued_value_minor=worth(sum(f.issued.values())),
        reinstated_value_minor=worth(f.reinstated),
        redeemed_value_minor=worth(f.redeemed),
        expired_value_minor=worth(f.expired),
        clawed_back_value_minor=worth(f.clawed_back),
        debt_incurred_value_minor=worth(f.debt_incurred),
        closing_value_minor=worth(f.closing),
        expired_by_source={source: c(points) for source, points in f.expired_by_source.items()},
    )
