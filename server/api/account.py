"""AccountService: proto → command → use case → proto, nothing else."""

from typing import Any

import grpc

from loyalty.v1 import account_service_pb2 as pb
from loyalty.v1 import account_service_pb2_grpc as pb_grpc
from pricing.bounds import clamp_int64
from server.api import convert
from server.api.edge import Edge, rpc
from server.service.accrue import AccrueResult, accrue_order
from server.service.grant import GrantResult, grant_points
from server.service.reads import get_account, list_ledger_entries

Context = grpc.aio.ServicerContext[Any, Any]


def _render_grant(result: GrantResult) -> bytes:
    return pb.GrantPointsResponse(
        points=result.points,
        balance_after=clamp_int64(result.balance_after),
        debt_points=clamp_int64(result.debt_points),
    ).SerializeToString()


def _render_accrue(result: AccrueResult) -> bytes:
    response = pb.AccrueOrderResponse(
        points=result.points, available_at=convert.stamp(result.available_at)
    )
    if result.expires_at is not None:
        response.expires_at.CopyFrom(convert.stamp(result.expires_at))
    return response.SerializeToString()


class AccountServicer(pb_grpc.AccountServiceServicer):
    SERVICE = pb.DESCRIPTOR.services_by_name["AccountService"].full_name

    def __init__(self, edge: Edge) -> None:
        self.edge = edge

    @rpc
    async def GetAccount(
        self, request: pb.GetAccountRequest, context: Context
    ) -> pb.GetAccountResponse:
        convert.ids(request, "program_id", "customer_id")
        now = self.edge.now(request)
        account = await self.edge.run(
            get_account,
            self.edge.deps,
            program_id=request.program_id,
            customer_id=request.customer_id,
            now=now,
        )
        return convert.account_response(
            account,
            texts=self.edge.texts(context, request.program_id),
            program=self.edge.deps.program(request.program_id),
        )

    @rpc
    async def GrantPoints(
        self, request: pb.GrantPointsRequest, context: Context
    ) -> pb.GrantPointsResponse:
        command = convert.grant_command(request)
        now = self.edge.now(request)
        answer = await self.edge.run(
            grant_points, self.edge.deps, command, now=now, render=_render_grant
        )
        return pb.GrantPointsResponse.FromString(answer)

    @rpc
    async def AccrueOrder(
        self, request: pb.AccrueOrderRequest, context: Context
    ) -> pb.AccrueOrderResponse:
        command = convert.accrue_command(request)
        now = self.edge.now(request)
        answer = await self.edge.run(
            accrue_order, self.edge.deps, command, now=now, render=_render_accrue
        )
        return pb.AccrueOrderResponse.FromString(answer)

    @rpc
    async def ListLedgerEntries(
        self, request: pb.ListLedgerEntriesRequest, context: Context
    ) -> pb.ListLedgerEntriesResponse:
        page_request = convert.ledger_request(request)
        now = self.edge.now(request)
        page = await self.edge.run(list_ledger_entries, self.edge.deps, page_request, now=now)
        return pb.ListLedgerEntriesResponse(
            entries=[convert.ledger_entry_message(entry) for entry in page.entries],
            next_page_token=page.next_page_token,
        )
