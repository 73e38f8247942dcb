"""Serialized requests for the load generator: one template per workload, ids appended per call.

Protobuf messages concatenate: a template carrying the cart, followed by a small message
carrying only the per-call ids, parses as the request with all fields set. Building a
20-line cart message per call would cost the generator more CPU than the server spends.
"""

from dataclasses import dataclass

from loyalty.v1 import cart_pb2, redemption_pb2
from loyalty.v1 import redemption_service_pb2 as pb

SERVICE = "/loyalty.v1.RedemptionService/"
QUOTE = SERVICE + "QuoteRedemption"
APPLY = SERVICE + "ApplyRedemption"
REVERSE = SERVICE + "ReverseRedemption"

LINES = 20
UNIT_PRICE_MINOR = 1_000  # 10 RUB a unit: with 20 buckets of points the balance never binds


def cart(currency: str = "RUB") -> cart_pb2.Cart:
    """20 goods lines over a few categories and brands, none excluded by either program."""
    return cart_pb2.Cart(
        currency=currency,
        delivery_minor=30_000,
        lines=[
            cart_pb2.CartLine(
                line_id=f"l{i}",
                sku=f"SKU-{i:04d}",
                category=("toothpaste", "brushes", "floss", "tools")[i % 4],
                brand=("Acme", "Dent", "Pro")[i % 3],
                tags=["sale"] if i % 5 == 0 else [],
                kind=cart_pb2.LINE_KIND_GOODS,
                quantity=1 + i % 2,
                unit_price_minor=UNIT_PRICE_MINOR + 10 * i,
                discount_minor=50 if i % 4 == 0 else 0,
            )
            for i in range(LINES)
        ],
    )


@dataclass(frozen=True)
class Templates:
    """The constant part of each request, serialized once per process."""

    quote: bytes
    apply: bytes
    reverse: bytes

    @classmethod
    def build(cls, *, program_id: str, points: int, payment_method: str = "") -> "Templates":
        the_cart = cart()
        return cls(
            quote=pb.QuoteRedemptionRequest(
                program_id=program_id, cart=the_cart, payment_method=payment_method
            ).SerializeToString(),
            apply=pb.ApplyRedemptionRequest(
                program_id=program_id, cart=the_cart, points=points, payment_method=payment_method
            ).SerializeToString(),
            reverse=pb.ReverseRedemptionRequest(
                program_id=program_id,
                lines=[redemption_pb2.ReturnedLine(line_id="l1", quantity=1)],
                reason="bench",
            ).SerializeToString(),
        )

    def quote_for(self, customer_id: str) -> bytes:
        return self.quote + pb.QuoteRedemptionRequest(customer_id=customer_id).SerializeToString()

    def apply_for(self, *, customer_id: str, order_id: str) -> bytes:
        ids = pb.ApplyRedemptionRequest(
            request_id=f"{order_id}-apply", customer_id=customer_id, order_id=order_id
        )
        return self.apply + ids.SerializeToString()

    def reverse_for(self, order_id: str) -> bytes:
        ids = pb.ReverseRedemptionRequest(request_id=f"{order_id}-return", order_id=order_id)
        return self.reverse + ids.SerializeToString()
