"""The encoders write exactly what json.dumps writes, and CSV cells cannot run as formulas."""

import json

import pytest

from annotator.export.formats import csv_cell, line_encoder, template_encoder
from annotator.export.rows import COLUMNS

TRICKY = 'quote " backslash \\ tab \t newline \n nul \x00 emoji 🦙 é </script>'


def preference_rows():
    yield ("p", "c", "r", 0.0, 1, 1.0, 7, 8, 9, 10, [3], 2, "train", "t7", "pairwise")
    yield (TRICKY, "", TRICKY, 2.5, 3, 2 / 3, None, 8, 9, 10, [], None, "eval", "p8", "likert")
    yield ("=1+1", "-x", "@y", 1, 2, 0.5, 1, 2, 3, 4, [1, 2], 0, "train", "a5", "ranking")


@pytest.mark.parametrize("row", list(preference_rows()))
def test_it_writes_preference_lines_exactly_as_json_dumps(row):
    columns = COLUMNS["preference"]
    names = [name for name, _ in columns]
    as_dict = dict(zip(names, row, strict=True))
    as_dict["margin"], as_dict["agreement"] = float(row[3]), float(row[5])
    expected = json.dumps(as_dict, ensure_ascii=False, separators=(",", ":"))

    assert line_encoder(columns)(row) == expected
    assert template_encoder(columns)(row) == expected
    assert json.loads(expected)["prompt"] == row[0]


def test_it_writes_other_schemas_exactly_as_json_dumps():
    columns = COLUMNS["raw"]
    row = (1, 2, 3, 4, "likert", "", None, None, None, None, {"helpful": 3}, ["a\nb"], [],
           TRICKY, [5, 6], None, True, "2026-01-01T00:00:00+00:00", None, "train",
           "imported")  # fmt: skip
    names = [name for name, _ in columns]
    expected = json.dumps(dict(zip(names, row, strict=True)), ensure_ascii=False,
                          separators=(",", ":"))  # fmt: skip
    assert line_encoder(columns)(row) == expected


@pytest.mark.parametrize(
    ("value", "kind", "cell"),
    [
        ("=SUM(A1)", "str", "'=SUM(A1)"),
        ("+1", "str", "'+1"),
        ("-1", "str", "'-1"),
        ("@x", "str", "'@x"),
        ("\tx", "str", "'\tx"),
        ("\rx", "str", "'\rx"),
        ("a=b", "str", "a=b"),
        ("line\nbreak", "str", "line\nbreak"),
        (None, "int", ""),
        (True, "bool", "true"),
        (-1, "int", -1),
        (["=x"], "str[]", '["=x"]'),
    ],
)
def test_it_neutralises_csv_cells_a_spreadsheet_would_run(value, kind, cell):
    assert csv_cell(value, kind) == cell
