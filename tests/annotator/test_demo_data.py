"""The demo teaches what the page does: its guidelines name the page's keys, and its chat
transcripts give each turn to the right speaker."""

import json
import re
from pathlib import Path

from django.http import QueryDict

from annotator.forms import answer_widgets
from annotator.management.commands import seed_demo
from annotator.models import Kind, Project

LABEL_JS = Path(__file__).resolve().parents[2] / "static" / "js" / "label.js"
GUIDELINE_NAMES = {"a": "A", "b": "B", "tie": "tie", "both_bad": "both bad"}


def guideline_keys() -> dict[str, str]:
    """{name: key} from the pairwise guidelines' "Keys: `1` A, `2` B, ..." line."""
    line = next(x for x in seed_demo.PAIRWISE_GUIDELINES.splitlines() if x.startswith("Keys:"))
    return {name: key for key, name in re.findall(r"`([^`]+)` ([^,.]+)", line)}


def test_it_gives_in_the_pairwise_guidelines_the_keys_the_page_uses():
    project = Project(kind=Kind.PAIRWISE, allow_tie=True, allow_both_bad=True)
    widgets = answer_widgets(kind=Kind.PAIRWISE, project=project, n_responses=2, posted=QueryDict())
    page_keys = {GUIDELINE_NAMES[o.value]: o.key for o in widgets["choices"]}
    # The keys label.js acts on, too (the buttons show the widgets' keys).
    digits = re.search(r"PAIRWISE_DIGITS = \{([^}]*)\}", LABEL_JS.read_text()).group(1)
    script_keys = {
        GUIDELINE_NAMES[value]: key for key, value in re.findall(r'(\d): "(\w+)"', digits)
    }
    assert page_keys == script_keys
    keys = guideline_keys()
    assert {name: keys[name] for name in page_keys} == page_keys
    assert keys["skip"] == "s"


def test_it_gives_each_demo_chat_turn_to_the_right_speaker():
    chats = [
        json.loads(line)["prompt"]
        for line in seed_demo.DATA_FILE.read_text().splitlines()
        if line.strip().startswith('{"prompt": [')
    ]
    assert len(chats) == 7
    for messages in chats:
        turns = [m["role"] for m in messages if m["role"] != "system"]
        # A transcript to be answered starts with the user, alternates, and ends with the
        # user's question.
        assert turns[0] == "user", messages
        assert turns[-1] == "user", messages
        assert all(a != b for a, b in zip(turns, turns[1:], strict=False)), messages
