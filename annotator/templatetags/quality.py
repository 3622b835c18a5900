"""Formatting of the label-quality numbers: shares as percentages, with their intervals."""

from django import template
from django.utils.html import format_html

register = template.Library()


@register.filter
def pct(value) -> str:
    """0.953 -> "95.3 %"; None -> an em dash."""
    if value is None:
        return "—"
    return f"{100 * value:.1f} %"


@register.filter
def num(value, digits: int = 3) -> str:
    if value is None:
        return "—"
    return f"{value:.{digits}g}"


@register.filter
def rate(value) -> str:
    """A stats.Rate: its share, and under it the 95 % interval and the count."""
    if value is None or value.value is None:
        return "—"
    return format_html(
        '{}<div class="hint" title="95 % Wilson interval, number of answers">{}–{} · n={}</div>',
        pct(value.value),
        pct(value.low),
        pct(value.high),
        value.n,
    )
