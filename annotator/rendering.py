"""Markdown for text that labelers and importers wrote: prompts, responses, guidelines.

Two layers, because this text is untrusted:
1. markdown-it-py with raw HTML disabled: any HTML in the source is escaped as text, and its
   link validator refuses javascript:, vbscript:, file: and data: URLs;
2. nh3 (ammonia) over the output, as defence in depth: only basic formatting tags survive,
   links keep http/https/mailto URLs only and get rel="noopener noreferrer".
Images are not rendered (an <img> would fetch a URL of the author's choosing); their
Markdown shows as a plain link instead.

Fenced code with a language (```python) is highlighted by Pygments on the server: its output
is escaped text in <span class="..."> elements, and the sanitiser keeps a span's class only
when it is one of Pygments' own token classes (static/css/pygments.css colours them).

`word_diff` marks, word by word, where two responses differ (difflib), as escaped plain text.
"""

import difflib
import re

import nh3
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.token import STANDARD_TYPES
from pygments.util import ClassNotFound

ALLOWED_TAGS = {
    "p", "br", "hr", "em", "strong", "del", "s", "code", "pre", "blockquote",
    "ul", "ol", "li", "a", "h1", "h2", "h3", "h4", "h5", "h6",
    "table", "thead", "tbody", "tr", "th", "td", "span",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}, "span": {"class"}}
LINK_SCHEMES = ("http://", "https://", "mailto:")
# Pygments' token classes ("k", "nf", "s2", ...): the only classes a span may keep.
HIGHLIGHT_CLASSES = frozenset(c for c in STANDARD_TYPES.values() if c)
MAX_HIGHLIGHTED = 20_000  # characters of one code block; longer ones stay plain
_formatter = HtmlFormatter(nowrap=True)


def _highlight(code: str, lang: str, _attrs) -> str:
    """Pygments' HTML for a fenced block, or "" for markdown-it's own escaped text."""
    if not lang or len(code) > MAX_HIGHLIGHTED:
        return ""
    try:
        lexer = get_lexer_by_name(lang.strip().lower(), stripnl=False, ensurenl=False)
    except ClassNotFound:
        return ""
    return highlight(code, lexer, _formatter)


# "breaks": a newline in a model's answer is a line break on screen, as the model meant it.
_markdown = (
    MarkdownIt(
        "commonmark",
        {"html": False, "breaks": True, "linkify": False, "highlight": _highlight},
    )
    .enable(["table", "strikethrough"])
    .disable("image")
)


def _keep_attribute(tag: str, attribute: str, value: str) -> str | None:
    # Absolute links with a known-safe scheme only: no relative links into this site.
    if tag == "a" and attribute == "href":
        return value if value.lower().startswith(LINK_SCHEMES) else None
    if tag == "span" and attribute == "class":
        return value if value in HIGHLIGHT_CLASSES else None
    return value


_cleaner = nh3.Cleaner(
    tags=ALLOWED_TAGS,
    clean_content_tags={"script", "style"},
    attributes=ALLOWED_ATTRIBUTES,
    attribute_filter=_keep_attribute,
    url_schemes={"http", "https", "mailto"},
    link_rel="noopener noreferrer",
)


def markdown_to_html(text: str | None) -> str:
    """Safe HTML for untrusted Markdown."""
    if not text:
        return ""
    return _cleaner.clean(_markdown.render(text))


def render_markdown(text: str | None) -> SafeString:
    """markdown_to_html, marked safe for templates (it has been sanitised)."""
    return mark_safe(markdown_to_html(text))  # noqa: S308 - sanitised by nh3 just above


# Words with the spaces after them, punctuation, leading spaces; sentences; lines.
_WORDS = re.compile(r"\w+\s*|[^\w\s]\s*|\s+")
_SENTENCES = re.compile(r".*?(?:[.!?]+\s+|$)", re.S)
# difflib is quadratic in what it compares (worse: responses share most of their words):
# a block is compared piece by piece only while (pieces of A) × (pieces of B) stays under
# this; past it, the block is marked as changed as a whole.
MAX_PAIRS = 250_000
MAX_DIFF_CHARS = 200_000  # per side; a longer pair is not compared at all


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def _sentences(text: str) -> list[str]:
    return [s for s in _SENTENCES.findall(text) if s]


def _words(text: str) -> list[str]:
    return _WORDS.findall(text)


_LEVELS = (_lines, _sentences, _words)


def word_diff(a: str, b: str) -> tuple[SafeString, SafeString] | None:
    """A and B as escaped plain text, with the words only A has in <del> and the words only B
    has in <ins>; None when either is too long to compare.

    Lines are matched first, then sentences within the lines that changed, then words within
    the sentences that changed (as `git diff --word-diff` narrows down), so the cost follows
    what differs rather than the length of the responses.
    """
    a, b = a or "", b or ""
    if max(len(a), len(b)) > MAX_DIFF_CHARS:
        return None
    out_a: list[str] = []
    out_b: list[str] = []
    _diff(a, b, 0, out_a, out_b)
    # Built from escaped pieces and fixed tags only.
    return mark_safe("".join(out_a)), mark_safe("".join(out_b))  # noqa: S308


def _diff(a: str, b: str, level: int, out_a: list[str], out_b: list[str]) -> None:
    pieces_a, pieces_b = _LEVELS[level](a), _LEVELS[level](b)
    if len(pieces_a) * len(pieces_b) > MAX_PAIRS:
        _mark(a, "del", out_a)
        _mark(b, "ins", out_b)
        return
    matcher = difflib.SequenceMatcher(None, pieces_a, pieces_b, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        left, right = "".join(pieces_a[i1:i2]), "".join(pieces_b[j1:j2])
        if op == "equal":
            out_a.append(escape(left))
            out_b.append(escape(right))
        elif op == "replace" and level + 1 < len(_LEVELS):
            _diff(left, right, level + 1, out_a, out_b)
        else:
            _mark(left, "del", out_a)
            _mark(right, "ins", out_b)


def _mark(text: str, tag: str, out: list[str]) -> None:
    if text:
        out.append(f'<{tag} class="diff">{escape(text)}</{tag}>')
