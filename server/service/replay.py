"""Whether the current call's answer is a replay from the idempotency record (docs/rules.md §7).

The edge sets a note for the length of each call (and carries it to the worker thread with the
call); `Deps.once` marks it when the request id had already been answered, so the edge can say
so in the answer's trailing metadata without every use case passing the fact along.
"""

from contextvars import ContextVar


class ReplayNote:
    """Whether a call's answer came from the idempotency record rather than from a new effect."""

    def __init__(self) -> None:
        self.replayed = False


replay_note: ContextVar[ReplayNote | None] = ContextVar("replay_note", default=None)


def mark_replayed() -> None:
    """The current call's answer is the stored first one: note it, if anyone is listening."""
    note = replay_note.get()
    if note is not None:
        note.replayed = True
