"""RedemptionService: proto → command → use case → proto, nothing else."""

import functools
from typing import Any

import grpc

from loyalty.v1 import redemption_service_pb2 as pb
from loyalty.v1 import redemption_service_pb2_grpc as pb_grpc
from pricing.bounds import clamp_int64
from server.api import convert
from server.api.edge import Edge, rpc
from server.service.apply import ApplyResult, apply_redemption
from server.service.capture import Captured, capture_redemption
from server.service.quote import quote_on_loop, quote_redemption
from server.service.reads import get_redemption
from server.service.reverse import ReverseResult, reverse_redemption
from server.texts.explain import QuoteWords

Context = grpc.aio.ServicerContext[Any, Any]


def _render_apply(result: ApplyResult, *, currency: str) -> bytes:
    return pb.ApplyRedemptionResponse(
        redemption=convert.redemption_message(result.redemption, currency=currency),
        balance_after=clamp_int64(result.balance_after),
    ).SerializeToString()


def _render_capture(result: Captured, *, currency: str) -> bytes:
    return pb.CaptureRedemptionResponse(
        redemption=convert.redemption_message(result.redemption, currency=currency),
        balance_after=result.balance_after,
    ).SerializeToString()


def _render_reverse(result: ReverseResult, *, currency: str) -> bytes:
    response = pb.ReverseRedemptionResponse(
        points_returned=result.points_returned,
        points_clawed_back=result.points_clawed_back,
        debt_points=result.debt_points,
        balance_after=clamp_int64(result.balance_after),
    )
    if result.redemption is not None:
        response.redemption.CopyFrom(
            convert.redemption_message(result.redemption, currency=currency)
        )
    return response.SerializeToString()


class RedemptionServicer(pb_grpc.RedemptionServiceServicer):
    SERVICE = pb.DESCRIPTOR.services_by_name["RedemptionService"].full_name

    def __init__(self, edge: Edge) -> None:
        self.edge = edge

    def _currency(self, request: Any) -> str:
        """The currency of the request's program, which its answer's money is counted in."""
        return self.edge.deps.program(request.program_id).currency

    @rpc
    async def QuoteRedemption(
        self, request: pb.QuoteRedemptionRequest, context: Context
    ) -> pb.QuoteRedemptionResponse:
        command = convert.quote_command(request)
        now = self.edge.now(request)
        deps = self.edge.deps
        quote = await self.edge.on_loop(quote_on_loop, deps, command, now=now)
        if quote is None:  # it reads more than one statement: on a worker thread
            quote = await self.edge.run(quote_redemption, deps, command, now=now)
        if not self.edge.explanations:
            return convert.quote_response(quote)
        words = QuoteWords(
            self.edge.texts(context, command.program_id),
            self.edge.deps.program(command.program_id),
            promo_code=command.cart.promo_code,
        )
        return convert.quote_response(quote, words)

    @rpc
    async def ApplyRedemption(
        self, request: pb.ApplyRedemptionRequest, context: Context
    ) -> pb.ApplyRedemptionResponse:
        command = convert.apply_command(request)
        now = self.edge.now(request)
        answer = await self.edge.run(
            apply_redemption,
            self.edge.deps,
            command,
            now=now,
            render=functools.partial(_render_apply, currency=self._currency(request)),
        )
        return pb.ApplyRedemptionResponse.FromString(answer)

    @rpc
    async def CaptureRedemption(
        self, request: pb.CaptureRedemptionRequest, context: Context
    ) -> pb.CaptureRedemptionResponse:
        command = convert.capture_command(request)
        now = self.edge.now(request)
        answer = await self.edge.run(
            capture_redemption,
            self.edge.deps,
            command,
            now=now,
            render=functools.partial(_render_capture, currency=self._currency(request)),
        )
        return pb.CaptureRedemptionResponse.FromString(answer)

    @rpc
    async def ReverseRedemption(
        self, request: pb.ReverseRedemptionRequest, context: Context
    ) -> pb.ReverseRedemptionResponse:
        command = convert.reverse_command(request)
        now = self.edge.now(request)
        answer = await self.edge.run(
            reverse_redemption,
            self.edge.deps,
            command,
            now=now,
            render=functools.partial(_render_reverse, currency=self._currency(request)),
        )
        return pb.ReverseRedemptionResponse.FromString(answer)

    @rpc
    async def GetRedemption(
        self, request: pb.GetRedemptionRequest, context: Context
    ) -> pb.GetRedemptionResponse:
        convert.ids(request, "program_id", "order_id")
        now = self.edge.now(request)  # a hold reads as EXPIRED from its deadline on
        redemption = await self.edge.run(
            get_redemption,
            self.edge.deps,
            program_id=request.program_id,
            order_id=request.order_id,
            now=now,
        )
        message = convert.redemption_message(redemption, currency=self._currency(request))
        return pb.GetRedemptionResponse(redemption=message)
