"""Programs as data: the dataclasses and the TOML loader that validates them."""

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pricing.bounds import MAX_PROGRAM_DAYS
from pricing.cart import CartLine, LineKind, match_key
from pricing.money import BP_WHOLE

SERVICES_RULE_ID = "services"
# Languages every program can be answered in (docs/rules.md §10); a program file may add more.
SHIPPED_LANGUAGES = ("ru", "en")
# A display name per language ("ru" → «Базовый»); the id stands in where one is missing.
Names = Mapping[str, str]


class SelectionMode(Enum):
    ANY_UP_TO_MAX = "ANY_UP_TO_MAX"
    ALL_OR_NOTHING = "ALL_OR_NOTHING"


class PromoPolicy(Enum):
    EXCLUSIVE = "EXCLUSIVE"
    STACK = "STACK"


@dataclass(frozen=True)
class Tier:
    id: str
    earn_rate_bp: int
    redeem_cap_bp: int
    min_spend_minor: int = 0
    min_orders: int = 0
    names: Names = field(default_factory=dict, compare=False)  # display data, not a rule


@dataclass(frozen=True)
class Source:
    id: str
    expiry_days: int | None  # None: points of this source never expire
    cap_bp: int | None = None  # None: no cap of its own beyond the tier cap
    names: Names = field(default_factory=dict, compare=False)  # display data, not a rule


@dataclass(frozen=True)
class PaymentMethodOverride:
    """Caps that replace the tier's and the sources' when the order is paid this way."""

    id: str
    redeem_cap_bp: int
    source_cap_bp: Mapping[str, int] = field(default_factory=dict)
    other_sources_cap_bp: int | None = None
    names: Names = field(default_factory=dict, compare=False)  # display data, not a rule


@dataclass(frozen=True)
class ExclusionRule:
    """Lines this rule keeps from being paid with points; values compare case-insensitively."""

    id: str
    categories: frozenset[str] = frozenset()
    brands: frozenset[str] = frozenset()
    skus: frozenset[str] = frozenset()
    tags: frozenset[str] = frozenset()
    kinds: frozenset[LineKind] = frozenset()
    names: Names = field(default_factory=dict, compare=False)  # what it keeps out, in words

    def matches(self, line: CartLine) -> bool:
        return self.match(line) is not None

    def match(self, line: CartLine) -> tuple[str, str] | None:
        """Which of the line's values the rule matched ("brand", "IQOS"), or None."""
        category, brand, sku, tags = line.match_keys
        if category in self.categories:
            return "category", line.category
        if brand in self.brands:
            return "brand", line.brand
        if sku in self.skus:
            return "sku", line.sku
        if not self.tags.isdisjoint(tags):
            return "tag", next(tag for tag in line.tags if tag.casefold() in self.tags)
        if self.kinds and line.kind in self.kinds:  # an Enum hashes in Python: skip it when empty
            return "kind", line.kind.value
        return None


@dataclass(frozen=True)
class Program:
    id: str
    name: str
    version: int
    currency: str
    point_value_minor: int
    time_zone: str
    tiers: tuple[Tier, ...]  # lowest first
    sources: Mapping[str, Source]
    accrual_source: str
    accrual_delay_days: int
    selection_mode: SelectionMode
    promo_policy: PromoPolicy
    services_redeemable: bool
    exclusions: tuple[ExclusionRule, ...] = ()
    # Keyed by `match_key(id)`: a cart's payment method is looked up the same way.
    payment_methods: Mapping[str, PaymentMethodOverride] = field(default_factory=dict)
    tier_window_days: int = 365
    default_language: str = "ru"
    # language → message id → the program's own wording (checked against the catalogue by
    # the server, which owns the messages)
    texts: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    path: str = field(default="", compare=False)  # the file it was read from, for errors

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    def tier(self, tier_id: str) -> Tier:
        for tier in self.tiers:
            if tier.id == tier_id:
                return tier
        raise KeyError(tier_id)

    def payment_override(self, payment_method: str) -> PaymentMethodOverride | None:
        """The caps paying with `payment_method` sets, compared as a match key (rules.md §3)."""
        return self.payment_methods.get(match_key(payment_method))

    def exclusion_for(self, line: CartLine) -> str | None:
        """The id of the rule that keeps `line` from points, or None if it is eligible."""
        found = self.exclusion_match(line)
        return None if found is None else found[0]

    def exclusion_match(self, line: CartLine) -> tuple[str, str, str] | None:
        """(rule id, what matched, the line's value) for an excluded line, else None."""
        if line.kind is LineKind.SERVICE and not self.services_redeemable:
            return SERVICES_RULE_ID, "kind", line.kind.value
        category, brand, sku, tags = line.match_keys
        categories, brands, skus, any_tags, kinds = self._excluded_values
        if (
            category not in categories
            and brand not in brands
            and sku not in skus
            and any_tags.isdisjoint(tags)
            and not (kinds and line.kind in kinds)
        ):
            return None  # no rule names any of the line's values (most lines: one look each)
        for rule in self.exclusions:
            matched = rule.match(line)
            if matched is not None:
                return rule.id, *matched
        return None

    @cached_property
    def _excluded_values(
        self,
    ) -> tuple[frozenset[str], frozenset[str], frozenset[str], frozenset[str], frozenset[LineKind]]:
        """Every value some exclusion rule names, per kind of value."""
        rules = self.exclusions
        return (
            frozenset().union(*(r.categories for r in rules)),
            frozenset().union(*(r.brands for r in rules)),
            frozenset().union(*(r.skus for r in rules)),
            frozenset().union(*(r.tags for r in rules)),
            frozenset().union(*(r.kinds for r in rules)),
        )


class ProgramConfigError(ValueError):
    """A program file is wrong; the message names the file and the key."""

    def __init__(self, path: Path | str, key: str, problem: str) -> None:
        super().__init__(f"{path}: {key}: {problem}")
        self.path = str(path)
        self.key = key
        self.problem = problem


def load_program(path: Path) -> Program:
    """Read and validate one program file."""
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ProgramConfigError(path, "(file)", f"not valid TOML: {exc}") from exc
    except OSError as exc:
        raise ProgramConfigError(path, "(file)", f"cannot be read: {exc.strerror}") from exc
    return _Reader(path).program(data)


def load_programs(directory: Path) -> dict[str, Program]:
    """Every `*.toml` program in `directory`, by program id."""
    programs: dict[str, Program] = {}
    for path in sorted(directory.glob("*.toml")):
        program = load_program(path)
        if program.id in programs:
            raise ProgramConfigError(path, "id", f"program id {program.id!r} is defined twice")
        programs[program.id] = program
    return programs


class _Reader:
    """Typed access to a parsed TOML table, with errors that name file and key."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, key: str, problem: str) -> ProgramConfigError:
        return ProgramConfigError(self.path, key, problem)

    def get(
        self,
        table: Mapping[str, Any],
        key: str,
        kind: type,
        *,
        prefix: str = "",
        default: Any = ...,
    ) -> Any:
        name = f"{prefix}{key}"
        if key not in table:
            if default is ...:
                raise self.fail(name, "is required")
            return default
        value = table[key]
        if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
            raise self.fail(name, f"must be {kind.__name__}, got {type(value).__name__}")
        return value

    def bp(
        self, table: Mapping[str, Any], key: str, *, prefix: str = "", default: Any = ...
    ) -> Any:
        value = self.get(table, key, int, prefix=prefix, default=default)
        if value is not None and not 0 <= value <= BP_WHOLE:
            raise self.fail(f"{prefix}{key}", f"must be basis points 0..{BP_WHOLE}, got {value}")
        return value

    def count(
        self, table: Mapping[str, Any], key: str, *, prefix: str = "", default: Any = ...
    ) -> Any:
        value = self.get(table, key, int, prefix=prefix, default=default)
        if value is not None and value < 0:
            raise self.fail(f"{prefix}{key}", f"must be >= 0, got {value}")
        return value

    def days(self, table: Mapping[str, Any], key: str, *, prefix: str = "", default: Any) -> Any:
        """A delay in days, bounded so that no date derived from an accepted instant
        overflows (pricing/bounds.py has the arithmetic)."""
        value = self.count(table, key, prefix=prefix, default=default)
        if value is not None and value > MAX_PROGRAM_DAYS:
            raise self.fail(f"{prefix}{key}", f"must be at most {MAX_PROGRAM_DAYS}, got {value}")
        return value

    def strings(self, table: Mapping[str, Any], key: str, *, prefix: str) -> frozenset[str]:
        values = self.get(table, key, list, prefix=prefix, default=[])
        if not all(isinstance(v, str) and match_key(v) for v in values):
            raise self.fail(f"{prefix}{key}", "must be a list of non-empty strings")
        return frozenset(match_key(v) for v in values)

    def enum(self, table: Mapping[str, Any], key: str, kind: type[Enum]) -> Any:
        value = self.get(table, key, str)
        try:
            return kind(value)
        except ValueError:
            choices = ", ".join(m.value for m in kind)
            raise self.fail(key, f"must be one of {choices}, got {value!r}") from None

    def program(self, data: Mapping[str, Any]) -> Program:
        known = {
            "id",
            "name",
            "version",
            "currency",
            "point_value_minor",
            "time_zone",
            "tiers",
            "sources",
            "accrual_source",
            "accrual_delay_days",
            "selection_mode",
            "promo_policy",
            "services_redeemable",
            "exclusions",
            "payment_methods",
            "tier_window_days",
            "default_language",
            "texts",
        }
        self.no_unknown(data, known, prefix="")
        currency = self.get(data, "currency", str)
        if len(currency) != 3 or not currency.isupper():
            raise self.fail("currency", f"must be an ISO-4217 code like 'RUB', got {currency!r}")
        time_zone = self.get(data, "time_zone", str)
        try:
            ZoneInfo(time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise self.fail("time_zone", f"unknown time zone {time_zone!r}") from None
        point_value = self.get(data, "point_value_minor", int)
        if point_value <= 0:
            raise self.fail("point_value_minor", "must be > 0")
        sources = self.sources(self.get(data, "sources", dict))
        accrual_source = self.get(data, "accrual_source", str)
        if accrual_source not in sources:
            raise self.fail("accrual_source", f"{accrual_source!r} is not one of [sources]")
        program_id = self.get(data, "id", str)
        if not program_id or len(program_id) > 256:
            raise self.fail("id", "must be 1..256 characters")
        return Program(
            id=program_id,
            name=self.get(data, "name", str, default=program_id),
            version=self.count(data, "version"),
            currency=currency,
            point_value_minor=point_value,
            time_zone=time_zone,
            tiers=self.tiers(self.get(data, "tiers", list)),
            sources=sources,
            accrual_source=accrual_source,
            accrual_delay_days=self.days(data, "accrual_delay_days", default=0),
            selection_mode=self.enum(data, "selection_mode", SelectionMode),
            promo_policy=self.enum(data, "promo_policy", PromoPolicy),
            services_redeemable=self.get(data, "services_redeemable", bool),
            exclusions=self.exclusions(self.get(data, "exclusions", list, default=[])),
            payment_methods=self.payment_methods(
                self.get(data, "payment_methods", list, default=[]), sources
            ),
            tier_window_days=self.days(data, "tier_window_days", default=365),
            default_language=self.default_language(data),
            texts=self.texts(data),
            path=str(self.path),
        )

    def names(self, item: Mapping[str, Any], *, prefix: str) -> dict[str, str]:
        """A `names = { ru = "…", en = "…" }` table: display names by language."""
        table = self.get(item, "names", dict, prefix=prefix, default={})
        for language, name in table.items():
            if not isinstance(name, str) or not name.strip():
                raise self.fail(f"{prefix}names.{language}", "must be a non-empty string")
        return dict(table)

    def texts(self, data: Mapping[str, Any]) -> dict[str, dict[str, str]]:
        """`[texts.LANG]` tables of message id = wording (checked against the catalogue later)."""
        texts: dict[str, dict[str, str]] = {}
        for language, table in self.get(data, "texts", dict, default={}).items():
            if not isinstance(table, dict):
                raise self.fail(f"texts.{language}", "must be a table of message id = text")
            for message_id, text in table.items():
                if not isinstance(text, str) or not text.strip():
                    raise self.fail(f"texts.{language}.{message_id}", "must be a non-empty string")
            texts[language] = dict(table)
        return texts

    def default_language(self, data: Mapping[str, Any]) -> str:
        language: str = self.get(data, "default_language", str, default="ru")
        offered = set(SHIPPED_LANGUAGES) | set(self.get(data, "texts", dict, default={}))
        if language not in offered:
            raise self.fail(
                "default_language",
                f"{language!r} is neither shipped ({', '.join(SHIPPED_LANGUAGES)}) "
                "nor given in [texts]",
            )
        return language

    def no_unknown(self, table: Mapping[str, Any], known: set[str], *, prefix: str) -> None:
        for key in table:
            if key not in known:
                raise self.fail(f"{prefix}{key}", f"unknown key (expected one of {sorted(known)})")

    def tiers(self, items: list[Any]) -> tuple[Tier, ...]:
        if not items:
            raise self.fail("tiers", "at least one tier is required")
        tiers = []
        for index, item in enumerate(items):
            prefix = f"tiers[{index}]."
            if not isinstance(item, dict):
                raise self.fail(f"tiers[{index}]", "must be a table")
            known = {
                "id",
                "earn_rate_bp",
                "redeem_cap_bp",
                "min_spend_minor",
                "min_orders",
                "names",
            }
            self.no_unknown(item, known, prefix=prefix)
            tiers.append(
                Tier(
                    id=self.get(item, "id", str, prefix=prefix),
                    earn_rate_bp=self.bp(item, "earn_rate_bp", prefix=prefix),
                    redeem_cap_bp=self.bp(item, "redeem_cap_bp", prefix=prefix),
                    min_spend_minor=self.count(item, "min_spend_minor", prefix=prefix, default=0),
                    min_orders=self.count(item, "min_orders", prefix=prefix, default=0),
                    names=self.names(item, prefix=prefix),
                )
            )
        if tiers[0].min_spend_minor or tiers[0].min_orders:
            raise self.fail("tiers[0]", "the first tier is where everyone starts: no thresholds")
        for index in range(1, len(tiers)):
            low, high = tiers[index - 1], tiers[index]
            if high.min_spend_minor < low.min_spend_minor or high.min_orders < low.min_orders:
                raise self.fail(f"tiers[{index}]", "tiers must be listed lowest threshold first")
        if len({t.id for t in tiers}) != len(tiers):
            raise self.fail("tiers", "tier ids must be unique")
        return tuple(tiers)

    def sources(self, table: Mapping[str, Any]) -> dict[str, Source]:
        if not table:
            raise self.fail("sources", "at least one source is required")
        sources = {}
        for source_id, item in table.items():
            prefix = f"sources.{source_id}."
            if not isinstance(item, dict):
                raise self.fail(f"sources.{source_id}", "must be a table")
            self.no_unknown(item, {"expiry_days", "cap_bp", "names"}, prefix=prefix)
            expiry = self.days(item, "expiry_days", prefix=prefix, default=None)
            if expiry == 0:
                raise self.fail(f"{prefix}expiry_days", "must be > 0 (omit it for no expiry)")
            cap = self.bp(item, "cap_bp", prefix=prefix, default=None)
            sources[source_id] = Source(
                id=source_id, expiry_days=expiry, cap_bp=cap, names=self.names(item, prefix=prefix)
            )
        return sources

    def exclusions(self, items: list[Any]) -> tuple[ExclusionRule, ...]:
        rules = []
        for index, item in enumerate(items):
            prefix = f"exclusions[{index}]."
            if not isinstance(item, dict):
                raise self.fail(f"exclusions[{index}]", "must be a table")
            self.no_unknown(
                item,
                {"id", "categories", "brands", "skus", "tags", "kinds", "names"},
                prefix=prefix,
            )
            kinds = set()
            for kind in self.strings(item, "kinds", prefix=prefix):
                try:
                    kinds.add(LineKind(kind.upper()))
                except ValueError:
                    raise self.fail(f"{prefix}kinds", f"unknown kind {kind!r}") from None
            rule = ExclusionRule(
                id=self.get(item, "id", str, prefix=prefix),
                categories=self.strings(item, "categories", prefix=prefix),
                brands=self.strings(item, "brands", prefix=prefix),
                skus=self.strings(item, "skus", prefix=prefix),
                tags=self.strings(item, "tags", prefix=prefix),
                kinds=frozenset(kinds),
                names=self.names(item, prefix=prefix),
            )
            if not (rule.categories or rule.brands or rule.skus or rule.tags or rule.kinds):
                raise self.fail(f"exclusions[{index}]", "matches nothing")
            rules.append(rule)
        if len({r.id for r in rules}) != len(rules):
            raise self.fail("exclusions", "rule ids must be unique")
        return tuple(rules)

    def payment_methods(
        self, items: list[Any], sources: Mapping[str, Source]
    ) -> dict[str, PaymentMethodOverride]:
        methods = {}
        for index, item in enumerate(items):
            prefix = f"payment_methods[{index}]."
            if not isinstance(item, dict):
                raise self.fail(f"payment_methods[{index}]", "must be a table")
            known = {"id", "redeem_cap_bp", "source_cap_bp", "other_sources_cap_bp", "names"}
            self.no_unknown(item, known, prefix=prefix)
            source_caps = self.get(item, "source_cap_bp", dict, prefix=prefix, default={})
            for source_id in source_caps:
                if source_id not in sources:
                    raise self.fail(f"{prefix}source_cap_bp.{source_id}", "is not one of [sources]")
                self.bp(source_caps, source_id, prefix=f"{prefix}source_cap_bp.")
            method = PaymentMethodOverride(
                id=self.get(item, "id", str, prefix=prefix),
                redeem_cap_bp=self.bp(item, "redeem_cap_bp", prefix=prefix),
                source_cap_bp=dict(source_caps),
                other_sources_cap_bp=self.bp(
                    item, "other_sources_cap_bp", prefix=prefix, default=None
                ),
                names=self.names(item, prefix=prefix),
            )
            key = match_key(method.id)
            if not key:
                raise self.fail(f"{prefix}id", "must not be empty")
            if key in methods:
                raise self.fail(f"{prefix}id", f"payment method {method.id!r} is defined twice")
            methods[key] = method
        return methods
