"""Calls refused at the transport, before any use case runs: authentication, roles, wire format.

Like domain errors, each is a dataclass whose fields are its `ErrorInfo.metadata`; the one
table in server/api/errors.py gives each its status and reason.
"""

from dataclasses import dataclass

from pricing.errors import facts


class CallRefused(Exception):
    """Base of the errors the API layer raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def metadata(self) -> dict[str, str]:
        """Facts for `ErrorInfo.metadata`: the error's fields."""
        return facts(self)


class TokenMissing(CallRefused):
    """A protected RPC was called without `authorization: Bearer <token>`."""

    def __init__(self) -> None:
        super().__init__("this call needs 'authorization: Bearer <token>'")


class TokenInvalid(CallRefused):
    """The bearer token is not one the server knows (or the header is malformed)."""

    def __init__(self) -> None:
        super().__init__("the bearer token is not valid for this server")


@dataclass(eq=False, kw_only=True)
class RoleNotAllowed(CallRefused):
    """The caller's role may not call this RPC."""

    role: str
    method: str

    def __post_init__(self) -> None:
        super().__init__(f"role {self.role!r} may not call {self.method}")


@dataclass(eq=False)
class MalformedRequest(CallRefused):
    """The request body does not decode as the method's message (bad wire format, bad UTF-8)."""

    message_type: str

    def __post_init__(self) -> None:
        super().__init__(
            f"the request is not a valid {self.message_type}: its wire format is corrupt "
            "or a string field is not UTF-8"
        )
