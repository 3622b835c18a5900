"""Template helpers of the labeling UI: `{% load labeling %}`."""

from django import template
from django.utils.safestring import SafeString

from annotator.rendering import render_markdown

register = template.Library()


@register.filter(name="markdown")
def markdown_filter(text: str | None) -> SafeString:
    """Untrusted Markdown to sanitised HTML (see annotator/rendering.py)."""
    return render_markdown(text)
