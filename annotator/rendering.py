"""Markdown for text that labelers and importers wrote: prompts, responses, guidelines.

Two layers, because this text is untrusted:
1. markdown-it-py with raw HTML disabled: any HTML in the source is escaped as text, and its
   link validator refuses javascript:, vbscript:, file: and data: URLs;
2. nh3 (ammonia) over the output, as defence in depth: only basic formatting tags survive,
   links keep http/https/mailto URLs only and get rel="noopener noreferrer".
Images are not rendered (an <img> would fetch a URL of the author's choosing); their
Markdown shows as a plain link instead.
"""

import nh3
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

ALLOWED_TAGS = {
    "p", "br", "hr", "em", "strong", "del", "s", "code", "pre", "blockquote",
    "ul", "ol", "li", "a", "h1", "h2", "h3", "h4", "h5", "h6",
    "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}}
LINK_SCHEMES = ("http://", "https://", "mailto:")

# "breaks": a newline in a model's answer is a line break on screen, as the model meant it.
_markdown = (
    MarkdownIt("commonmark", {"html": False, "breaks": True, "linkify": False})
    .enable(["table", "strikethrough"])
    .disable("image")
)


def _keep_attribute(tag: str, attribute: str, value: str) -> str | None:
    # Absolute links with a known-safe scheme only: no relative links into this site.
    if tag == "a" and attribute == "href":
        return value if value.lower().startswith(LINK_SCHEMES) else None
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
