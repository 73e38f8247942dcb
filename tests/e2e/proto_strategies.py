"""Hypothesis strategies for any protobuf message, built from its descriptor.

`messages(descriptor)` draws either a *wild* message — any subset of fields, each with a hostile
value of its wire type: integers over their whole range, enum numbers the enum does not define,
strings of any Unicode (NUL, right-to-left marks, astral planes, far past every limit), lists past
the service's limits, timestamps outside the range the service computes in — or a *near-valid*
one: every field set to a value the service knows (real programs and sources, a small pool of
customers, orders and request ids, sane amounts, instants around 2026-03-01), then up to two
fields per message replaced by wild values or left out. Near-valid requests reach the code behind
validation (spending, holds, returns, accruals on accounts that earlier examples funded), and
Hypothesis shrinks a failure towards the valid request it broke.
"""

from collections.abc import Mapping
from typing import Any

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import strategies as st

INT64 = (-(2**63), 2**63 - 1)
INT32 = (-(2**31), 2**31 - 1)
EDGES32 = (0, 1, -1, 2, 100, 10**6, 2**31 - 1, -(2**31))
EDGES = (*EDGES32, 2**53 + 1, 2**63 - 1, -(2**63))
TIMESTAMP = "google.protobuf.Timestamp"
T0_SECONDS = 1_772_355_600  # 2026-03-01T09:00:00Z
DAY = 86_400

# Strings protobuf can carry: any code point but lone surrogates (not encodable as UTF-8).
ANY_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
ODD_TEXT = st.one_of(
    st.sampled_from(
        [
            "",
            "\x00",
            "stomatorg\x00",
            " ",
            "\u202eRUB",  # right-to-left override
            "𝔰𝔱𝔬𝔪𝔞𝔱𝔬𝔯𝔤",  # astral plane
            "'; DROP TABLE accounts; --",
            "%s%n%x",
            "\ud7ff\ue000\uffff",
        ]
    ),
    # Around the service's limits (128 for request ids, 256 for other strings) and far past them.
    st.builds(
        str.__mul__, st.sampled_from(["x", "é", "😀"]), st.sampled_from([128, 129, 256, 257, 5000])
    ),
)

# Values the service knows, by field name: near-valid requests draw only from these.
KNOWN: Mapping[str, tuple[str, ...]] = {
    "program_id": ("stomatorg", "denco"),
    "customer_id": ("c-1", "c-2", "c-3"),
    "order_id": ("o-1", "o-2", "o-3", "o-4"),
    "request_id": ("r-1", "r-2", "r-3", "r-4", "r-5", "r-6"),
    "source": ("loyalty", "action", "promo", "gifts"),
    "currency": ("RUB",),
    "payment_method": ("", "denco_card"),
    "promo_code": ("", "", "SPRING10"),
    "line_id": ("1", "2", "3"),
    "sku": ("drill", "bit"),
    "category": ("tools", "gift_certificates"),
    "brand": ("Makita", "DENCO"),
    "tags": ("no_points", "new"),
    "reason": ("return", "welcome"),
    "page_token": ("",),
}
SANE_INTS: Mapping[str, st.SearchStrategy[int]] = {
    "quantity": st.integers(1, 3),
    "unit_price_minor": st.integers(1_000, 1_000_000),
    "discount_minor": st.sampled_from([0, 0, 100]),
    "promo_discount_minor": st.sampled_from([0, 0, 100]),
    "delivery_minor": st.sampled_from([0, 30_000]),
    "points": st.integers(1, 30),
    "hold_seconds": st.sampled_from([0, 0, 60, 3_600]),
    "page_size": st.integers(0, 20),
}
NEAR_T0 = st.integers(T0_SECONDS - 30 * DAY, T0_SECONDS + 60 * DAY)


# ---- wild values ----------------------------------------------------------------------


def wild_text(field: FieldDescriptor) -> st.SearchStrategy[str]:
    known = KNOWN.get(field.name, ())
    strategies = [ANY_TEXT, ODD_TEXT]
    return st.one_of(st.sampled_from(known), *strategies) if known else st.one_of(*strategies)


def wild_int(field: FieldDescriptor) -> st.SearchStrategy[int]:
    is_32 = field.cpp_type == FieldDescriptor.CPPTYPE_INT32
    low, high = INT32 if is_32 else INT64
    edges = EDGES32 if is_32 else EDGES
    return st.one_of(st.integers(-10, 10**7), st.sampled_from(edges), st.integers(low, high))


def enum_numbers(enum: EnumDescriptor) -> st.SearchStrategy[int]:
    """Defined values, and numbers the enum does not define (proto3 enums are open)."""
    return st.one_of(st.sampled_from([v.number for v in enum.values]), st.integers(*INT32))


def wild_timestamp(cls: type[Message]) -> st.SearchStrategy[Message]:
    fields = {
        "seconds": st.one_of(
            NEAR_T0,
            # 0001-01-01, 9999-12-31T23:59:59, one past it, the epoch, one before it
            st.sampled_from([-62_135_596_800, 253_402_300_799, 253_402_300_800, 0, -1]),
            st.integers(*INT64),
        ),
        "nanos": st.one_of(
            st.integers(0, 999_999_999), st.sampled_from([-1, 10**9]), st.integers(*INT32)
        ),
    }
    return st.fixed_dictionaries({}, optional=fields).map(lambda values: cls(**values))


def wild_value(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        element: st.SearchStrategy[Any] = messages(field.message_type, depth=depth + 1)
    elif field.type == FieldDescriptor.TYPE_ENUM:
        element = enum_numbers(field.enum_type)
    elif field.type == FieldDescriptor.TYPE_STRING:
        element = wild_text(field)
    elif field.cpp_type in (FieldDescriptor.CPPTYPE_INT32, FieldDescriptor.CPPTYPE_INT64):
        element = wild_int(field)
    else:
        raise NotImplementedError(f"no strategy for {field.full_name}")
    if not field.is_repeated:
        return element
    few = st.lists(element, max_size=4)
    if depth > 1:
        return few
    # One element copied past any sane limit: a cart of 300 lines, 300 returned lines.
    many = st.tuples(element, st.integers(90, 300)).map(lambda pair: [pair[0]] * pair[1])
    return st.one_of(few, many)


def wild(descriptor: Descriptor, depth: int) -> st.SearchStrategy[Message]:
    cls = GetMessageClass(descriptor)
    if descriptor.full_name == TIMESTAMP:
        return wild_timestamp(cls)
    if depth > 3:
        return st.just(cls())
    optional = {f.name: wild_value(f, depth) for f in descriptor.fields}
    return st.fixed_dictionaries({}, optional=optional).map(lambda values: build(cls, values))


# ---- near-valid values ----------------------------------------------------------------


def sane_value(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        element: st.SearchStrategy[Any] = near_valid(field.message_type, depth + 1)
    elif field.type == FieldDescriptor.TYPE_ENUM:
        element = st.sampled_from([v.number for v in field.enum_type.values])
    elif field.name == "request_id":  # mostly fresh, sometimes a replay
        element = st.one_of(st.uuids().map(str), st.sampled_from(KNOWN["request_id"]))
    elif field.type == FieldDescriptor.TYPE_STRING:
        element = st.sampled_from(KNOWN.get(field.name, ("x",)))
    else:
        element = SANE_INTS.get(field.name, st.integers(0, 1_000))
    return st.lists(element, min_size=1, max_size=3) if field.is_repeated else element


def near_valid(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
    """Every field sane, then up to two of them hostile or left out."""
    cls = GetMessageClass(descriptor)
    if descriptor.full_name == TIMESTAMP:
        return NEAR_T0.map(lambda seconds: cls(seconds=seconds))
    names = [f.name for f in descriptor.fields]

    @st.composite
    def draw_message(draw: st.DrawFn) -> Message:
        values = {f.name: draw(sane_value(f, depth)) for f in descriptor.fields}
        for name in draw(st.lists(st.sampled_from(names), max_size=2, unique=True)):
            field = descriptor.fields_by_name[name]
            if draw(st.booleans()):
                del values[name]
            else:
                values[name] = draw(wild_value(field, depth))
        return build(cls, values)

    return draw_message()


def messages(descriptor: Descriptor, *, depth: int = 0) -> st.SearchStrategy[Message]:
    """Hostile messages of `descriptor`'s type: near-valid ones and wild ones."""
    return st.one_of(near_valid(descriptor, depth), wild(descriptor, depth))


def build(cls: type[Message], values: Mapping[str, Any]) -> Message:
    message = cls()
    for name, value in values.items():
        field = cls.DESCRIPTOR.fields_by_name[name]
        if field.is_repeated:
            getattr(message, name).extend(value)
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            getattr(message, name).CopyFrom(value)
        else:
            setattr(message, name, value)
    return message
