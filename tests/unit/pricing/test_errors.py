"""pricing.errors: messages a caller reads, and the facts (ErrorInfo metadata) from the fields."""

from pricing.errors import (
    AccrualMismatch,
    ExceedsRemaining,
    InvalidArgument,
    OrderNotFound,
    UnknownSource,
    Violation,
    facts,
)


def test_one_violation_is_named_alone() -> None:
    error = InvalidArgument([Violation("cart.lines[0].quantity", "must be > 0")])
    assert str(error) == "cart.lines[0].quantity: must be > 0"


def test_more_violations_are_counted_after_the_first() -> None:
    error = InvalidArgument([Violation("a", "bad"), Violation("b", "bad"), Violation("c", "bad")])
    assert str(error) == "a: bad (and 2 more)"  # 3 - 1 = 2 more
    assert facts(error) == {}  # the violations travel in a BadRequest, not as facts


def test_unknown_source_names_the_field_and_the_sources() -> None:
    error = UnknownSource(field="source", source="gift", known=["action", "loyalty"])
    assert error.violations == [
        Violation("source", "unknown source 'gift'; this program has action, loyalty")
    ]


def test_facts_are_the_fields_as_strings() -> None:
    error = ExceedsRemaining(line_id="l1", requested=3, remaining=2)
    assert facts(error) == error.metadata() == {"line_id": "l1", "requested": "3", "remaining": "2"}
    assert str(error) == "line 'l1': asked to return 3 units, 2 remain"
    assert facts(OrderNotFound("o-9")) == {"order_id": "o-9"}
    assert facts(ValueError("not a domain error")) == {}


def test_an_accrual_mismatch_counts_the_other_lines_only_when_there_are_some() -> None:
    one = AccrualMismatch("o-1", [Violation("cart.lines[1].line_id", "'X' is not a line")])
    assert (
        str(one)
        == "the accrual does not match order 'o-1': cart.lines[1].line_id: 'X' is not a line"
    )
    two = AccrualMismatch("o-1", [Violation("a", "bad"), Violation("b", "bad")])
    assert str(two) == "the accrual does not match order 'o-1': a: bad (and 1 more)"
