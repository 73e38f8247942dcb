"""Errors of the service layer that are not the pricing domain's."""

from pricing.errors import DomainError


class ClockOverrideDisabled(DomainError):
    """`as_of` was sent to a server that does not allow overriding its clock."""

    def __init__(self) -> None:
        super().__init__("as_of is honoured only when the server runs with --allow-clock-override")
