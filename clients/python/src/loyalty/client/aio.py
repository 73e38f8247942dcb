"""The asyncio client: the same methods as `LoyaltyClient`, awaitable."""

from collections.abc import AsyncIterator
from datetime import datetime
from types import TracebackType
from typing import TypeVar

import grpc

from loyalty.client import requests
from loyalty.client.channel import (
    DEFAULT_TARGET,
    DEFAULT_TIMEOUT,
    CallInfo,
    ChannelConfig,
    TlsConfig,
)
from loyalty.client.errors import decode_rpc_error
from loyalty.v1 import account_service_pb2 as account_pb
from loyalty.v1 import account_service_pb2_grpc, cart_pb2, redemption_service_pb2_grpc
from loyalty.v1 import redemption_service_pb2 as redemption_pb

Req = TypeVar("Req")
Res = TypeVar("Res")


class AsyncLoyaltyClient:
    """Calls the loyalty service; every call has a deadline and raises `LoyaltyError`.

    >>> async with AsyncLoyaltyClient("127.0.0.1:50051") as client:
    ...     (await client.get_account(program_id="stomatorg", customer_id="c-42")).spendable_points
    """

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        token: str | None = None,
        tls: TlsConfig | None = None,
        language: str | None = None,
        config: ChannelConfig | None = None,
    ) -> None:
        self.config = config or ChannelConfig(
            target=target, timeout=timeout, token=token, tls=tls, language=language
        )
        credentials = self.config.credentials()
        options = self.config.options()
        self.channel = (
            grpc.aio.secure_channel(self.config.target, credentials, options=options)
            if credentials is not None
            else grpc.aio.insecure_channel(self.config.target, options=options)
        )
        self.redemptions = redemption_service_pb2_grpc.RedemptionServiceStub(self.channel)
        self.accounts = account_service_pb2_grpc.AccountServiceStub(self.channel)

    async def close(self) -> None:
        await self.channel.close()

    async def __aenter__(self) -> "AsyncLoyaltyClient":
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _call(
        self,
        method: "grpc.aio.UnaryUnaryMultiCallable[Req, Res]",
        request: Req,
        info: CallInfo | None = None,
    ) -> Res:
        try:
            call = method(
                request, timeout=self.config.timeout, metadata=self.config.call_metadata()
            )
            response = await call
            if info is not None:
                info.record(await call.trailing_metadata())
        except grpc.RpcError as error:
            raise decode_rpc_error(error) from error
        return response

    # ---- RedemptionService -----------------------------------------------------------

    async def quote_redemption(
        self,
        *,
        program_id: str,
        customer_id: str,
        cart: cart_pb2.Cart,
        payment_method: str = "",
        as_of: datetime | None = None,
    ) -> redemption_pb.QuoteRedemptionResponse:
        request = requests.quote_redemption(
            program_id=program_id, customer_id=customer_id, cart=cart,
            payment_method=payment_method, as_of=as_of,
        )  # fmt: skip
        return await self._call(self.redemptions.QuoteRedemption, request)

    async def apply_redemption(
        self,
        *,
        program_id: str,
        customer_id: str,
        order_id: str,
        cart: cart_pb2.Cart,
        points: int,
        payment_method: str = "",
        hold_seconds: int = 0,
        request_id: str | None = None,
        as_of: datetime | None = None,
        info: CallInfo | None = None,
    ) -> redemption_pb.ApplyRedemptionResponse:
        request = requests.apply_redemption(
            program_id=program_id, customer_id=customer_id, order_id=order_id, cart=cart,
            points=points, payment_method=payment_method, hold_seconds=hold_seconds,
            request_id=request_id, as_of=as_of,
        )  # fmt: skip
        return await self._call(self.redemptions.ApplyRedemption, request, info)

    async def capture_redemption(
        self,
        *,
        program_id: str,
        order_id: str,
        request_id: str | None = None,
        as_of: datetime | None = None,
        info: CallInfo | None = None,
    ) -> redemption_pb.CaptureRedemptionResponse:
        request = requests.capture_redemption(
            program_id=program_id, order_id=order_id, request_id=request_id, as_of=as_of
        )
        return await self._call(self.redemptions.CaptureRedemption, request, info)

    async def reverse_redemption(
        self,
        *,
        program_id: str,
        order_id: str,
        lines: requests.ReturnedLines = (),
        reason: str = "",
        request_id: str | None = None,
        as_of: datetime | None = None,
        info: CallInfo | None = None,
    ) -> redemption_pb.ReverseRedemptionResponse:
        request = requests.reverse_redemption(
            program_id=program_id, order_id=order_id, lines=lines, reason=reason,
            request_id=request_id, as_of=as_of,
        )  # fmt: skip
        return await self._call(self.redemptions.ReverseRedemption, request, info)

    async def get_redemption(
        self, *, program_id: str, order_id: str, as_of: datetime | None = None
    ) -> redemption_pb.GetRedemptionResponse:
        request = requests.get_redemption(program_id=program_id, order_id=order_id, as_of=as_of)
        return await self._call(self.redemptions.GetRedemption, request)

    # ---- AccountService --------------------------------------------------------------

    async def get_account(
        self, *, program_id: str, customer_id: str, as_of: datetime | None = None
    ) -> account_pb.GetAccountResponse:
        request = requests.get_account(program_id=program_id, customer_id=customer_id, as_of=as_of)
        return await self._call(self.accounts.GetAccount, request)

    async def grant_points(
        self,
        *,
        program_id: str,
        customer_id: str,
        points: int,
        source: str,
        reason: str = "",
        available_at: datetime | None = None,
        expires_at: datetime | None = None,
        request_id: str | None = None,
        as_of: datetime | None = None,
        info: CallInfo | None = None,
    ) -> account_pb.GrantPointsResponse:
        request = requests.grant_points(
            program_id=program_id, customer_id=customer_id, points=points, source=source,
            reason=reason, available_at=available_at, expires_at=expires_at,
            request_id=request_id, as_of=as_of,
        )  # fmt: skip
        return await self._call(self.accounts.GrantPoints, request, info)

    async def accrue_order(
        self,
        *,
        program_id: str,
        customer_id: str,
        order_id: str,
        cart: cart_pb2.Cart,
        delivered_at: datetime,
        request_id: str | None = None,
        as_of: datetime | None = None,
        info: CallInfo | None = None,
    ) -> account_pb.AccrueOrderResponse:
        request = requests.accrue_order(
            program_id=program_id, customer_id=customer_id, order_id=order_id, cart=cart,
            delivered_at=delivered_at, request_id=request_id, as_of=as_of,
        )  # fmt: skip
        return await self._call(self.accounts.AccrueOrder, request, info)

    async def list_ledger_entries(
        self,
        *,
        program_id: str,
        customer_id: str,
        page_size: int = 0,
        page_token: str = "",
        as_of: datetime | None = None,
    ) -> account_pb.ListLedgerEntriesResponse:
        request = requests.list_ledger_entries(
            program_id=program_id, customer_id=customer_id, page_size=page_size,
            page_token=page_token, as_of=as_of,
        )  # fmt: skip
        return await self._call(self.accounts.ListLedgerEntries, request)

    async def ledger_entries(
        self,
        *,
        program_id: str,
        customer_id: str,
        page_size: int = 0,
        as_of: datetime | None = None,
    ) -> AsyncIterator[account_pb.LedgerEntry]:
        """Every ledger entry, oldest first, fetching page after page."""
        token = ""
        while True:
            page = await self.list_ledger_entries(
                program_id=program_id, customer_id=customer_id, page_size=page_size,
                page_token=token, as_of=as_of,
            )  # fmt: skip
            for entry in page.entries:
                yield entry
            token = page.next_page_token
            if not token:
                return
