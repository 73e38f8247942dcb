"""One program's messages in one language, and the numbers formatted by Babel (CLDR)."""

from collections.abc import Mapping
from decimal import Decimal
from string import Formatter

from babel import Locale, UnknownLocaleError
from babel.numbers import (
    NumberPattern,
    get_currency_precision,
    get_currency_symbol,
    get_decimal_symbol,
    get_group_symbol,
    parse_pattern,
)

from pricing.program import SHIPPED_LANGUAGES, Program, ProgramConfigError
from server.texts.catalogue import KNOWN, NOUNS, SHIPPED
from server.texts.language import negotiate

# The language of errors that name no program the server has (and of anything said before
# a program is known): the language of the status message itself.
NO_PROGRAM_LANGUAGE = "en"


def locale_of(language: str) -> Locale:
    return Locale.parse(language, sep="-")


def plural_categories(locale: Locale) -> frozenset[str]:
    """The CLDR plural categories of a language ("one", "few", "many", "other" for ru)."""
    return frozenset(locale.plural_form.tags) | {"other"}


class Texts:
    """Templates of one language (shipped, with a program's overrides) and its number formats.

    Built once per program and language; saying a message formats only its own values.
    """

    def __init__(self, language: str, templates: Mapping[str, str], *, currency: str) -> None:
        self.language = language
        self.templates = dict(templates)
        self.locale = locale_of(language)
        self._plural = self.locale.plural_form
        self._decimal: NumberPattern = self.locale.decimal_formats[None]
        self._percent: NumberPattern = self.locale.percent_formats[None]
        self._digits = get_currency_precision(currency)
        self._percents: dict[int, str] = {}  # the program's rates: a handful of values
        self._plurals: dict[int, str] = {}  # CLDR's category of each count said so far
        # The locale's currency pattern with this currency's symbol written in once, so that
        # formatting does not look the symbol (and the currency's names) up on every call.
        symbol = get_currency_symbol(currency, locale=self.locale).replace("'", "''")
        pattern = self.locale.currency_formats["standard"].pattern
        self._money = parse_pattern(pattern.replace("¤", f"'{symbol}'"))
        self._whole = _Shape(self._decimal, self.locale, digits=0)
        self._minor = _Shape(self._money, self.locale, digits=self._digits)

    def say(self, message_id: str, **values: str) -> str:
        return self.templates[message_id].format(**values)

    def number(self, value: int) -> str:
        fast = self._whole.say(value)
        return fast if fast is not None else str(self._decimal.apply(value, self.locale))

    def plural(self, value: int) -> str:
        """The CLDR plural category of `value` (Babel's rule, remembered per value)."""
        found = self._plurals.get(value)
        if found is None:
            found = self._plural(value)
            if len(self._plurals) < 4096:
                self._plurals[value] = found
        return found

    def count(self, noun: str, value: int) -> str:
        """`value` with its noun in the plural form the language's CLDR rule picks."""
        return self.templates[f"{noun}.{self.plural(value)}"].format(count=self.number(value))

    def points(self, value: int) -> str:
        return self.count("points", value)

    def money(self, minor: int) -> str:
        fast = self._minor.say(minor)
        if fast is not None:
            return fast
        return str(self._money.apply(Decimal(minor).scaleb(-self._digits), self.locale))

    def percent(self, bp: int) -> str:
        """Basis points as a percentage with as many decimals as it has (300 → 3 %)."""
        found = self._percents.get(bp)
        if found is None:
            value = Decimal(bp).scaleb(-4)
            found = str(self._percent.apply(value, self.locale, decimal_quantization=False))
            if len(self._percents) < 1024:  # rates come from program files, so few
                self._percents[bp] = found
        return found

    def name(self, names: Mapping[str, str], fallback: str) -> str:
        return names.get(self.language) or fallback


class _Shape:
    """A CLDR number pattern as Babel applies it to a whole count of units (or of minor units
    with the currency's digits), taken apart once: the text around the digits, the group
    and decimal symbols. `say` puts a value together from them, as Babel would (the tests
    check it against Babel); None where the pattern is not of the plain shape this takes
    (groups of three, no rounding, a value below zero): Babel then says it itself."""

    def __init__(self, pattern: NumberPattern, locale: Locale, *, digits: int) -> None:
        self.digits = digits
        self.group = get_group_symbol(locale)
        self.decimal = get_decimal_symbol(locale)
        zero = Decimal(0).scaleb(-digits) if digits else Decimal(0)
        probe = str(pattern.apply(zero, locale))
        core = "0" + (self.decimal + "0" * digits if digits else "")
        self.prefix, found, self.suffix = probe.partition(core)
        plain = pattern.grouping == (3, 3) and pattern.frac_prec == (digits, max(digits, 3))
        self.usable = bool(found) and (plain or (digits > 0 and pattern.frac_prec == (digits,) * 2))

    def say(self, value: int) -> str | None:
        if not self.usable or value < 0:
            return None
        units, fraction = divmod(value, 10**self.digits) if self.digits else (value, 0)
        whole = f"{units:,}"
        if self.group != ",":
            whole = whole.replace(",", self.group)
        if self.digits:
            whole += self.decimal + str(fraction).rjust(self.digits, "0")
        return self.prefix + whole + self.suffix


class Languages:
    """Every program's Texts by language, built and checked once at start."""

    def __init__(self, programs: Mapping[str, Program]) -> None:
        self._defaults = {pid: program.default_language for pid, program in programs.items()}
        self._offered: dict[str, tuple[str, ...]] = {}
        self._texts: dict[tuple[str, str], Texts] = {}
        for program in programs.values():
            check_texts(program)
            offered = tuple(dict.fromkeys((*SHIPPED_LANGUAGES, *program.texts)))
            self._offered[program.id] = offered
            for language in offered:
                templates = {**SHIPPED.get(language, {}), **program.texts.get(language, {})}
                self._texts[program.id, language] = Texts(
                    language, templates, currency=program.currency
                )
        self._plain = {
            language: Texts(language, SHIPPED[language], currency="XXX")
            for language in SHIPPED_LANGUAGES
        }

    def offered(self, program_id: str) -> tuple[str, ...]:
        return self._offered.get(program_id, SHIPPED_LANGUAGES)

    def texts(self, program_id: str | None, accept_language: str) -> Texts:
        """The texts for a call to `program_id` that sent `accept_language` ("" if none)."""
        default = self._defaults.get(program_id or "")
        if default is None:  # no such program: the shipped texts
            language = negotiate(accept_language, SHIPPED_LANGUAGES, NO_PROGRAM_LANGUAGE)
            return self._plain[language]
        assert program_id is not None
        language = negotiate(accept_language, self._offered[program_id], default)
        return self._texts[program_id, language]

    def program_texts(self, program_id: str, language: str) -> Texts:
        return self._texts[program_id, language]


def check_texts(program: Program) -> None:
    """A program's own wording: known messages, their placeholders only, every added language.

    Raises ProgramConfigError naming the key, as the program loader does.
    """

    def fail(key: str, problem: str) -> ProgramConfigError:
        return ProgramConfigError(program.path or f"program {program.id!r}", key, problem)

    for language, overrides in program.texts.items():
        try:
            locale = locale_of(language)
        except (UnknownLocaleError, ValueError):
            raise fail(f"texts.{language}", f"unknown language {language!r}") from None
        offered = _offered_messages(locale)
        for message_id, template in overrides.items():
            key = f'texts.{language}."{message_id}"'
            if message_id not in offered:
                raise fail(key, f"no message {message_id!r} (docs/languages.md lists them)")
            problem = template_problem(template, offered[message_id])
            if problem:
                raise fail(key, problem)
        missing = sorted(set(offered) - set(overrides) - set(SHIPPED.get(language, {})))
        if missing:
            raise fail(
                f"texts.{language}",
                f"{language!r} is not shipped, so every message needs a text; missing "
                + ", ".join(missing),
            )


def _offered_messages(locale: Locale) -> dict[str, frozenset[str]]:
    """The messages a language has: every known one, counted nouns in its plural categories."""
    offered = {mid: names for mid, names in KNOWN.items() if mid.split(".")[0] not in NOUNS}
    for noun in NOUNS:
        for category in plural_categories(locale):
            offered[f"{noun}.{category}"] = frozenset({"count"})
    return offered


def template_problem(template: str, allowed: frozenset[str]) -> str | None:
    """Why `template` cannot be said with the placeholders `allowed`, or None."""
    try:
        fields = [(name, conv, spec) for _, name, spec, conv in Formatter().parse(template)]
    except ValueError as exc:
        return f"not a valid template ({exc}); write a literal brace as {{{{ or }}}}"
    for name, conversion, spec in fields:
        if name is None:
            continue
        if name not in allowed:
            offered = ", ".join("{" + n + "}" for n in sorted(allowed)) or "none"
            return f"placeholder {{{name}}} is not one this message has (it has {offered})"
        if conversion or spec:
            return f"placeholder {{{name}}} takes no conversion or format spec"
    return None
