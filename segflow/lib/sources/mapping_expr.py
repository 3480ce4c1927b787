"""What a column-mapping expression (``columns:`` or ``cancellation:``) may contain.

A mapping expression is polars SQL evaluated over one source file's own columns. polars SQL also
has subqueries and table functions (``(SELECT column_1 FROM read_csv('/etc/passwd'))``): a config
file could then read any file the process can, and polars echoes that file's content in its
error. So an expression may hold only column references, literals, operators and the scalar
functions listed here; anything else is refused before polars sees it. An allow-list rather than
a deny-list of table functions, because polars adds functions from release to release. Hand-written
(a regex over the words outside literals) rather than a SQL parser such as sqlglot: an allow-list
needs only those words, and a parser of another dialect would be a dependency that can disagree
with polars about what the text means.
"""

from __future__ import annotations

import re

# Words that may stand before "(" without being a function call.
_OPERATORS = frozenset({"and", "or", "not", "in", "is", "case", "when", "then", "else", "end", "as",
                        "between", "like", "ilike", "null", "distinct"})  # fmt: skip
SCALAR_FUNCTIONS = frozenset({
    "cast", "try_cast", "coalesce", "nullif", "ifnull", "nvl", "if", "iif", "greatest", "least",
    "abs", "ceil", "ceiling", "floor", "round", "trunc", "sign", "sqrt", "cbrt", "ln", "log", "log2",
    "log10", "exp", "pow", "power", "mod",
    "lower", "upper", "initcap", "trim", "ltrim", "rtrim", "btrim", "length", "char_length",
    "character_length", "octet_length", "substr", "substring", "left", "right", "concat",
    "concat_ws", "replace", "reverse", "starts_with", "ends_with", "strpos", "position",
    "regexp_like", "regexp_replace", "split_part", "lpad", "rpad",
    "date", "timestamp", "strptime", "strftime", "to_date", "date_part", "date_trunc", "extract",
})  # fmt: skip
# Words that only a query, never a column expression, needs.
_QUERY_WORDS = frozenset({"select", "from", "with", "join", "union", "intersect", "except", "values",
                          "table", "lateral", "into", "unnest"})  # fmt: skip
# String literals and quoted identifiers are data, not syntax: blanked out before the words are read.
_QUOTED = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|`[^`]*`")
_CALL = re.compile(r"\b([A-Za-z_][\w]*)\s*\(")
_WORD = re.compile(r"\b[A-Za-z_]\w*\b")


def expression_problem(text: str) -> str | None:
    """Why ``text`` is not an allowed column expression, or None when it is."""
    bare = _QUOTED.sub("''", text)
    if ";" in bare:
        return "holds ';': one expression only"
    query = sorted({w.lower() for w in _WORD.findall(bare)} & _QUERY_WORDS)
    if query:
        return (
            f"uses {query[0].upper()}: only column expressions are allowed (no subqueries or table functions)"
        )
    for name in _CALL.findall(bare):
        lowered = name.lower()
        if lowered not in SCALAR_FUNCTIONS and lowered not in _OPERATORS:
            return (
                f"calls {name}(): not an allowed scalar function (allowed: CAST, COALESCE, CASE, "
                "arithmetic, string and date functions; no table functions)"
            )
    return None


# A string literal, a quoted identifier ("..." or `...`), or a bare word with the "(" of a call.
_TOKEN = re.compile(r"'(?:[^']|'')*'|\"((?:[^\"]|\"\")*)\"|`([^`]*)`|\b([A-Za-z_]\w*)\b(\s*\()?")


_LOGIC = re.compile(r"[=<>!]|\b(case|when|like|ilike|in|is|between|and|or|not)\b", re.IGNORECASE)


def cast_text_columns(text: str, text_columns: set[str]) -> str:
    """``text`` with every reference to one of ``text_columns`` read as a number:
    ``Amount / Qty`` becomes ``TRY_CAST(TRIM(Amount) AS DOUBLE) / TRY_CAST(TRIM(Qty) AS DOUBLE)``.
    Literals and function names are left alone. Only plain arithmetic is rewritten: in an
    expression with a comparison or a CASE, a text column may be meant as text (``Status = 'x'``),
    and reading it as a number would change the answer silently, so ``text`` comes back as it is."""
    if _LOGIC.search(_QUOTED.sub("''", text)):
        return text

    def swap(match: re.Match) -> str:
        token = match.group(0)
        name = match.group(1) if match.group(1) is not None else match.group(2) or match.group(3)
        if token.startswith("'") or match.group(4) or name not in text_columns:
            return token
        return f"TRY_CAST(TRIM({token}) AS DOUBLE)"

    return _TOKEN.sub(swap, text)
