"""Safe Markdown (annotator/rendering.py): formatting survives, scripts and bad links do not."""

import pytest
from django.template import Context, Template
from django.utils.safestring import SafeString

from annotator.rendering import markdown_to_html, render_markdown


def test_it_renders_basic_markdown():
    html = markdown_to_html("# Title\n\n**bold** _it_ `x = 1`\n\n- one\n- two")
    assert "<h1>Title</h1>" in html
    assert "<strong>bold</strong>" in html and "<em>it</em>" in html
    assert "<code>x = 1</code>" in html
    assert "<ul>" in html and "<li>one</li>" in html


def test_it_renders_code_blocks_with_their_markup_escaped():
    html = markdown_to_html('```python\nprint("<b>hi</b>")\n```')
    assert html.startswith("<pre><code>")
    assert "&lt;b&gt;hi&lt;/b&gt;" in html
    assert "<b>" not in html


def test_it_keeps_line_breaks_of_model_output():
    assert "<br>" in markdown_to_html("line one\nline two")


@pytest.mark.parametrize(
    "source",
    [
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        '<a href="https://example.com" onclick="alert(1)">x</a>',
        "<iframe src=https://example.com></iframe>",
        "<style>body{display:none}</style>",
    ],
)
def test_it_escapes_raw_html(source):
    html = markdown_to_html(source)
    assert "<script" not in html and "<img" not in html and "<iframe" not in html
    assert "<style" not in html and "<a " not in html
    assert "&lt;" in html


@pytest.mark.parametrize(
    "source",
    [
        "[x](javascript:alert(1))",
        "[x](JaVaScRiPt:alert(1))",
        "[x](vbscript:msgbox(1))",
        "[x](data:text/html;base64,PHNjcmlwdD4=)",
        "[x](java&#x09;script:alert(1))",
        "<javascript:alert(1)>",
    ],
)
def test_it_drops_dangerous_links(source):
    html = markdown_to_html(source).lower()
    assert 'href="javascript' not in html
    assert 'href="vbscript' not in html
    assert 'href="data' not in html


def test_it_keeps_http_https_and_mailto_links_with_rel_noopener():
    html = markdown_to_html("[a](https://example.com) [b](http://x.org) [c](mailto:me@x.org)")
    assert '<a href="https://example.com" rel="noopener noreferrer">a</a>' in html
    assert 'href="http://x.org"' in html
    assert 'href="mailto:me@x.org"' in html


def test_it_drops_relative_links():
    html = markdown_to_html("[admin](/admin/) [up](../secret)")
    assert "href" not in html
    assert "admin" in html


def test_it_shows_images_as_links_not_images():
    html = markdown_to_html("![pixel](https://tracker.example/p.gif)")
    assert "<img" not in html
    assert 'href="https://tracker.example/p.gif"' in html


def test_it_renders_tables_and_strikethrough():
    html = markdown_to_html("| a | b |\n|---|---|\n| 1 | 2 |\n\n~~old~~")
    assert "<table>" in html and "<td>1</td>" in html
    assert "<s>old</s>" in html


def test_it_returns_empty_for_nothing():
    assert markdown_to_html("") == ""
    assert markdown_to_html(None) == ""


def test_it_marks_its_output_safe_for_templates():
    assert isinstance(render_markdown("x"), SafeString)
    out = Template("{% load labeling %}{{ text|markdown }}").render(
        Context({"text": "**b** <script>alert(1)</script>"})
    )
    assert "<strong>b</strong>" in out
    assert "&lt;script&gt;" in out and "<script>" not in out


def test_it_highlights_fenced_code_on_the_server_with_its_markup_escaped():
    html = markdown_to_html('```python\ndef f():\n    return "<b>hi</b>"\n```')
    assert '<span class="k">def</span>' in html and '<span class="nf">f</span>' in html
    assert "&lt;b&gt;hi&lt;/b&gt;" in html and "<b>" not in html
    # No language, or one Pygments does not know: plain escaped code.
    assert (
        markdown_to_html("```\n<i>x</i>\n```") == "<pre><code>&lt;i&gt;x&lt;/i&gt;\n</code></pre>\n"
    )
    assert "<span" not in markdown_to_html("```klingon\nx = 1\n```")


def test_it_keeps_only_pygments_classes_on_spans():
    from annotator.rendering import _cleaner

    html = _cleaner.clean('<span class="k">ok</span><span class="evil" style="x">no</span>')
    assert html == '<span class="k">ok</span><span>no</span>'


def test_it_marks_word_differences_with_everything_escaped():
    from annotator.rendering import word_diff

    a, b = word_diff("The cat sat <b>on</b> the mat.", "The dog sat <b>on</b> a mat.")
    tag = '<{0} class="diff">{1} </{0}>'
    same = "sat &lt;b&gt;on&lt;/b&gt; "
    assert a == f"The {tag.format('del', 'cat')}{same}{tag.format('del', 'the')}mat."
    assert b == f"The {tag.format('ins', 'dog')}{same}{tag.format('ins', 'a')}mat."
    assert word_diff("word " * 50_000, "word") is None


def test_it_diffs_long_responses_quickly_by_narrowing_down():
    import time

    from annotator.rendering import word_diff

    paragraph = "The answer explains, at some length and with care, why this is so. " * 3
    a = "\n\n".join(f"{i}: {paragraph}" for i in range(200))
    b = a.replace("100: The answer explains", "100: The reply explains")
    one_line = " ".join(f"w{i % 40}" for i in range(8000))
    started = time.perf_counter()
    left, right = word_diff(a, b)
    word_diff(one_line, one_line.replace("w7 ", "x "))
    assert time.perf_counter() - started < 0.5  # one word-level pass over all took seconds
    assert left.count("<del") == 1 and '<del class="diff">answer </del>' in left
    assert right.count("<ins") == 1 and '<ins class="diff">reply </ins>' in right
