"""A job's log tail as people read it: no terminal escape codes, no progress-bar redraws.

The training process writes for a terminal: colour codes (ESC [ … m), cursor moves, and
progress bars (tqdm) that redraw one line with carriage returns, hundreds of times. Shown
as-is that is noise; here each redrawn line keeps only its last state, and a run of
progress-bar lines keeps only its last one. Plain Python: no Django import.
"""

import re

# CSI (ESC [ … final byte), OSC (ESC ] … BEL or ESC \), and two-byte escapes (ESC x).
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# A tqdm-style bar: "45%|████▌     | 9/20 [00:01<00:02, 4.5it/s]", or a count with a rate.
_BAR = re.compile(r"\d+%\|.*\||\d+/\d+ \[[0-9:]+<[0-9:?]+|[0-9.]+\s?(?:it|s)/(?:s|it)\]")


def clean_log(text: str) -> str:
    text = _ESCAPES.sub("", text or "")
    lines = []
    for raw in text.replace("\r\n", "\n").split("\n"):
        # A carriage return redraws the line: what is on screen is the last non-empty state.
        parts = [p for p in raw.split("\r") if p.strip()]
        line = _CONTROL.sub("", parts[-1] if parts else "").rstrip()
        if lines and _BAR.search(line) and _BAR.search(lines[-1]) and _same_bar(lines[-1], line):
            lines[-1] = line
            continue
        lines.append(line)
    return "\n".join(lines).strip("\n")


def _same_bar(previous: str, line: str) -> bool:
    """Two states of one bar share the text before their percentage or count."""
    return _label(previous) == _label(line)


def _label(line: str) -> str:
    match = re.search(r"\d+%\||\d+/\d+", line)
    return line[: match.start()].strip() if match else line
