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


_WORDS = re.compile(r"\s+|\w+|[^\w\s]")
MAX_DIFF_WORDS = 5000  # per side; a longer pair is not compared (difflib is quadratic)


def word_diff(a: str, b: str) -> tuple[SafeString, SafeString] | None:
    """A and B as escaped plain text, with the words only A has in <del> and the words only B
    has in <ins>; None when either is too long to compare."""
    words_a, words_b = _WORDS.findall(a or ""), _WORDS.findall(b or "")
    if max(len(words_a), len(words_b)) > MAX_DIFF_WORDS:
        return None
    out_a: list[str] = []
    out_b: list[str] = []
    matcher = difflib.SequenceMatcher(None, words_a, words_b, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        left, right = escape("".join(words_a[i1:i2])), escape("".join(words_b[j1:j2]))
        if op == "equal":
            out_a.append(left)
            out_b.append(right)
            continue
        if left:
            out_a.append(f'<del class="diff">{left}</del>')
        if right:
            out_b.append(f'<ins class="diff">{right}</ins>')
    # Built from escaped pieces and fixed tags only.
    return mark_safe("".join(out_a)), mark_safe("".join(out_b))  # noqa: S308
