"""Built-in patterns usable wherever a term is: ``@date``, ``@money``, ``@percent``.

They run on normalised text (NFKC, case-folded), so full-width digits and the full-width
percent sign are already ASCII. They are compiled with RE2 like operator regexes: linear
time, and one pass for many alternatives. RE2's ``\b`` is an ASCII word boundary, which is
what is wanted here: a CJK character next to a number is a boundary (税率は25%).
"""

from __future__ import annotations

from typing import Any

from mastwatch.rules.regex import compile_regex

__all__ = ["BUILTIN_NEEDLES", "BUILTIN_PATTERNS"]

_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
_DAY_NUMBER = r"(?:[12]\d|3[01]|0?[1-9])"  # 1-31, with or without a leading zero
_MONTH_NUMBER = r"(?:1[0-2]|0?[1-9])"  # 1-12
_DAY = rf"{_DAY_NUMBER}(?:st|nd|rd|th)?"
_YEAR = r"(?:1[89]\d\d|2\d\d\d)"
_ERA_YEAR = r"(?:令和|平成|昭和)(?:\d{1,2}|元)年"

_DATE = "|".join(
    (
        # 20 july, 20 july 2025
        rf"\b{_DAY} {_MONTH}\.?(?:,? {_YEAR})?\b",
        # july 20, oct. 26, july 20, 2025
        rf"\b{_MONTH}\.? {_DAY}(?:,? {_YEAR})?\b",
        # july 2025
        rf"\b{_MONTH}\.? {_YEAR}\b",
        # 2025-07-20, 2025/7/20
        rf"\b{_YEAR}[-/]{_MONTH_NUMBER}[-/]{_DAY_NUMBER}\b",
        # 7月20日, 2025年7月20日, 令和7年7月20日, 2025年7月
        rf"(?:(?:\b{_YEAR}年|{_ERA_YEAR}) ?)?\b{_MONTH_NUMBER}月(?:{_DAY_NUMBER}日)?",
    )
)

_NUMBER = r"(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)"
_SCALE = r"(?: ?(?:tn|trillion|bn|billion|mn|million|m|k|thousand)\b)?"
_CURRENCY_BEFORE = r"(?:\b(?:usd|jpy|eur|gbp) ?|\bus\$|\$|¥|€|£)"
_CURRENCY_AFTER = r" (?:dollars?|yen|euros?|pounds?)\b"

_MONEY = "|".join(
    (
        # $40 billion, usd 1.27tn, ¥3,000
        rf"{_CURRENCY_BEFORE}{_NUMBER}{_SCALE}",
        # 40 billion dollars, 500 yen
        rf"\b{_NUMBER}{_SCALE}{_CURRENCY_AFTER}",
        # 1兆2700億ドル, 40億ドル, 3000円
        r"\b\d[\d,.]*(?:兆[\d,.]*)?(?:億[\d,.]*)?(?:万[\d,.]*)?(?:円|ドル|ユーロ|ポンド)",
    )
)

_PERCENT = r"\b\d+(?:\.\d+)?(?: ?%| percent\b| per cent\b| ?パーセント)"

BUILTIN_PATTERNS: dict[str, Any] = {
    "@date": compile_regex(_DATE),
    "@money": compile_regex(_MONEY),
    "@percent": compile_regex(_PERCENT),
}

# For each pattern, strings one of which every match contains (read off its alternatives
# above: a month name starts with one of these three letters, a numeric date has 月 or a
# dash or slash between digits, an amount has a currency, a percentage a sign or word). A
# field holding none of them is not searched: a plain substring test is several times
# cheaper than a call into RE2. The text is NFKC-normalised and case-folded, so these are
# lower case (RE2's case-insensitive matching adds only the long s and the Kelvin sign to
# ASCII letters, which NFKC turns into s and k). tests/unit/test_rules_language.py checks
# them against strings generated from the patterns.
BUILTIN_NEEDLES: dict[str, tuple[str, ...]] = {
    "@date": (
        *("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
        *("月", "-", "/"),
    ),
    "@money": (
        *("$", "¥", "€", "£", "usd", "jpy", "eur", "gbp", "dollar", "yen", "pound"),
        *("円", "ドル", "ユーロ", "ポンド"),
    ),
    "@percent": ("%", "cent", "パーセント"),
}
