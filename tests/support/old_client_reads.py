"""Every read of a plan, through whichever generated stubs `loyalty.v1` resolves to.

Run as a script with `PYTHONPATH=<another checkout>/clients/python/src` it reads a
server as that checkout's clients do: fields the server added since are unknown to
them and dropped, so two servers' answers compare on what those clients could see.

stdin: {"address": "host:port", "accounts": [[program, customer], ...],
        "orders": [[program, order], ...], "instants": ["ISO-8601", ...], "page_size": n}
stdout: a JSON list, one item per read: GetAccount and every ListLedgerEntries page per
(account, instant), then GetRedemption per (order, instant); an answer is its message as
a dict, a failure its status code and ErrorInfo reason.
"""

import json
import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from loyalty.v1 import account_service_pb2 as account_pb
from loyalty.v1 import account_service_pb2_grpc as account_grpc
from loyalty.v1 import redemption_service_pb2 as redemption_pb
from loyalty.v1 import redemption_service_pb2_grpc as redemption_grpc


def stamp(iso: str) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(datetime.fromisoformat(iso))
    return out


def answer(method: Callable[..., Message], request: Message) -> tuple[dict[str, Any], Any]:
    """(what the read answered, the response or None)."""
    try:
        response = method(request, timeout=30)
    except grpc.RpcError as err:
        status = rpc_status.from_call(err)  # type: ignore[arg-type]
        reasons = []
        for detail in status.details if status else []:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                reasons.append(info.reason)
        return {"error": err.code().name, "reasons": reasons}, None  # type: ignore[attr-defined]
    response.DiscardUnknownFields()
    return {"ok": MessageToDict(response, preserving_proto_field_name=True)}, response


def main() -> None:
    plan = json.load(sys.stdin)
    channel = grpc.insecure_channel(plan["address"])
    accounts = account_grpc.AccountServiceStub(channel)
    redemptions = redemption_grpc.RedemptionServiceStub(channel)
    reads: list[dict[str, Any]] = []
    for instant in plan["instants"]:
        for program, customer in plan["accounts"]:
            seen, _ = answer(
                accounts.GetAccount,
                account_pb.GetAccountRequest(
                    program_id=program, customer_id=customer, as_of=stamp(instant)
                ),
            )
            reads.append({"read": ["GetAccount", program, customer, instant], **seen})
            token, page = "", 0
            while True:
                seen, response = answer(
                    accounts.ListLedgerEntries,
                    account_pb.ListLedgerEntriesRequest(
                        program_id=program,
                        customer_id=customer,
                        page_size=plan["page_size"],
                        page_token=token,
                        as_of=stamp(instant),
                    ),
                )
                # A page token is opaque: what a walk sees is its entries and whether
                # there is a next page.
                if response is not None:
                    token = response.next_page_token
                    seen = {"entries": seen["ok"].get("entries", []), "more": bool(token)}
                reads.append({"read": ["ListLedgerEntries", program, customer, instant, page]})
                reads[-1].update(seen)
                page += 1
                if response is None or not token:
                    break
        for program, order in plan["orders"]:
            seen, _ = answer(
                redemptions.GetRedemption,
                redemption_pb.GetRedemptionRequest(
                    program_id=program, order_id=order, as_of=stamp(instant)
                ),
            )
            reads.append({"read": ["GetRedemption", program, order, instant], **seen})
    channel.close()
    json.dump(reads, sys.stdout)


if __name__ == "__main__":
    main()
