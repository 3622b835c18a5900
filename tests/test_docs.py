"""The docs' examples are run, so the docs cannot drift from the code.

docs/api.md: every ```http request block and the ```http response block after it are replayed in
order against the test client, as alice / bob / charlie with the tokens the page names. Status,
the headers shown and the JSON body must match. Ids are matched by position (the doc's first
project id stands for whatever id the database gave), completions by their text, timestamps by
type.

docs/import.md: every ```jsonl / ```csv block is imported through the API into one project per
kind named on its "Tasks made" line, and must make that many tasks; a block followed by a
```json block instead must be refused with exactly that body.
"""

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.test import Client
from rest_framework.authtoken.models import Token

from annotator.models import Kind, Project, Task
from tests.factories import ProjectFactory

DOCS = Path(__file__).resolve().parent.parent / "docs"
FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)
TIMESTAMPS = {"created_at", "expires_at"}


@dataclass
class Block:
    lang: str
    body: str
    after: str  # the prose between this block and the next one


def blocks(path: Path) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    found = list(FENCE.finditer(text))
    out = []
    for i, m in enumerate(found):
        end = found[i + 1].start() if i + 1 < len(found) else len(text)
        out.append(Block(lang=m.group(1), body=m.group(2), after=text[m.end() : end]))
    return out


# --- docs/api.md ----------------------------------------------------------------------------


@dataclass
class Exchange:
    method: str
    path: str
    headers: dict
    body: str
    status: int
    response_headers: dict
    response_body: str


def _split_http(text: str) -> tuple[str, dict, str]:
    head, _, body = text.partition("\n\n")
    first, *header_lines = head.splitlines()
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return first, headers, body.strip()


def api_exchanges() -> list[Exchange]:
    http = [b for b in blocks(DOCS / "api.md") if b.lang == "http"]
    assert len(http) % 2 == 0, "every http request block needs an http response block"
    exchanges = []
    for request, response in zip(http[::2], http[1::2], strict=True):
        first, headers, body = _split_http(request.body)
        method, path, *_ = first.split()
        status_line, response_headers, response_body = _split_http(response.body)
        assert status_line.startswith("HTTP/"), f"expected a response after {first!r}"
        exchanges.append(
            Exchange(
                method=method,
                path=path,
                headers=headers,
                body=body,
                status=int(status_line.split()[1]),
                response_headers=response_headers,
                response_body=response_body,
            )
        )
    return exchanges


@dataclass
class Ids:
    """The doc's ids, bound to the database's on first sight, then checked on every use."""

    bound: dict = field(default_factory=dict)

    def bind(self, entity: str, doc_id: int, real_id, where: str) -> None:
        assert isinstance(real_id, int), f"{where}: expected an id, got {real_id!r}"
        key = (entity, doc_id)
        if key in self.bound:
            assert self.bound[key] == real_id, f"{where}: {entity} {doc_id} is not the same"
        else:
            assert real_id not in {v for (e, _), v in self.bound.items() if e == entity}, where
            self.bound[key] = real_id

    def real(self, entity: str, doc_id: int) -> int:
        assert (entity, doc_id) in self.bound, f"the docs use {entity} {doc_id} before making it"
        return self.bound[(entity, doc_id)]


ID_KEYS = {
    "project": "project", "annotation_id": "annotation", "skipped": "task",
    "undone": "annotation", "task": "task", "labeler_id": "user",
}  # fmt: skip


def _entity_of(path: str) -> str:
    if path.endswith("/tasks/next/"):
        return "task"
    if path.endswith("/annotations/") or re.fullmatch(r"/api/v1/annotations/\d+/", path):
        return "annotation"
    if re.fullmatch(r"/api/v1/projects/(\d+/)?", path):
        return "project"
    raise AssertionError(f"no id expected in the response to {path}")


def match(doc, real, *, ids: Ids, path: str, where: str) -> None:
    if isinstance(doc, list):
        assert isinstance(real, list) and len(real) == len(doc), f"{where}: {real!r}"
        for i, (d, r) in enumerate(zip(doc, real, strict=True)):
            match(d, r, ids=ids, path=path, where=f"{where}[{i}]")
        return
    if not isinstance(doc, dict):
        assert doc == real, f"{where}: the docs say {doc!r}, the API said {real!r}"
        return
    assert isinstance(real, dict), f"{where}: {real!r}"
    assert set(real) == set(doc), f"{where}: keys {sorted(real)} != documented {sorted(doc)}"
    for key, value in doc.items():
        here = f"{where}.{key}"
        if key in TIMESTAMPS:
            assert isinstance(real[key], str), here
        elif key == "id":
            ids.bind(_entity_of(path), value, real[key], here)
        elif key in ID_KEYS:
            ids.bind(ID_KEYS[key], value, real[key], here)
        elif key == "completions":
            # Served in a random order per labeler: pair them up by text.
            by_text = {c["text"]: c for c in real[key]}
            assert sorted(by_text) == sorted(c["text"] for c in value), here
            for c in value:
                ids.bind("completion", c["id"], by_text[c["text"]]["id"], here)
        else:
            match(value, real[key], ids=ids, path=path, where=here)


def _real_path(path: str, ids: Ids) -> str:
    path = re.sub(
        r"/projects/(\d+)/", lambda m: f"/projects/{ids.real('project', int(m[1]))}/", path
    )
    path = re.sub(
        r"/annotations/(\d+)/",
        lambda m: f"/annotations/{ids.real('annotation', int(m[1]))}/",
        path,
    )
    return re.sub(r"/tasks/(\d+)/", lambda m: f"/tasks/{ids.real('task', int(m[1]))}/", path)


def _real_body(body: str, content_type: str, ids: Ids) -> str:
    if content_type == "application/json" and body:
        data = json.loads(body)
        if "ranking" in data:
            data["ranking"] = [ids.real("completion", c) for c in data["ranking"]]
        return json.dumps(data)
    return body + "\n" if body else body


def test_it_replays_every_api_example(alice, bob, charlie):
    tokens = {}
    for user in (alice, bob, charlie):
        # The tokens named in docs/api.md, so the examples' headers work as they are.
        key = re.search(rf"{user.username}\s+`([0-9a-f]{{40}})`", (DOCS / "api.md").read_text())[1]
        Token.objects.create(user=user, key=key)
        tokens[key] = user.username
    exchanges = api_exchanges()
    assert len(exchanges) >= 20
    statuses = {e.status for e in exchanges}
    assert {200, 201, 204, 400, 401, 403, 404, 409} <= statuses
    client = Client()
    ids = Ids()
    for n, ex in enumerate(exchanges, start=1):
        where = f"example {n} ({ex.method} {ex.path})"
        content_type = ex.headers.get("content-type", "application/octet-stream")
        extra = {}
        if "authorization" in ex.headers:
            assert ex.headers["authorization"].split()[1] in tokens, where
            extra["HTTP_AUTHORIZATION"] = ex.headers["authorization"]
        resp = client.generic(
            ex.method,
            _real_path(ex.path, ids),
            _real_body(ex.body, content_type, ids),
            content_type=content_type,
            **extra,
        )
        assert resp.status_code == ex.status, f"{where}: {resp.status_code} {resp.content!r}"
        for name, value in ex.response_headers.items():
            assert resp.headers.get(name) == value, f"{where}: header {name}"
        if ex.status == 204:
            assert resp.content == b"" and ex.response_body == "", where
            continue
        match(json.loads(ex.response_body), resp.json(), ids=ids, path=ex.path, where=where)


def test_it_documents_every_api_route():
    from annotator import api_urls

    replayed = {re.sub(r"/\d+/", "/{id}/", e.path) for e in api_exchanges()}
    # Routes without an example here are named in the text (the export ones, in export.md).
    text = (DOCS / "api.md").read_text()
    for pattern in api_urls.urlpatterns:
        route = "/api/v1/" + re.sub(r"<(?:int|id):\w+>", "{id}", str(pattern.pattern))
        assert route in replayed or f"`{route}`" in text, f"{route} is not in docs/api.md"


# --- docs/import.md -------------------------------------------------------------------------

KIND_SETTINGS = {
    "pairwise": {"kind": Kind.PAIRWISE},
    "pairwise with `wide_lines=ranking`": {
        "kind": Kind.PAIRWISE,
        "wide_lines": Project.WideLines.RANKING,
    },
    "likert": {"kind": Kind.LIKERT},
    "ranking": {"kind": Kind.RANKING},
}
COUNTS = re.compile(r"(pairwise with `wide_lines=ranking`|pairwise|likert|ranking): \*\*(\d+)\*\*")


def import_examples() -> list[tuple[Block, Block | None]]:
    found = blocks(DOCS / "import.md")
    examples = []
    for i, block in enumerate(found):
        if block.lang in ("jsonl", "csv"):
            following = found[i + 1] if i + 1 < len(found) else None
            refusal = following if following is not None and following.lang == "json" else None
            examples.append((block, refusal))
    return examples


def _import(client, project: Project, block: Block):
    content_type = "application/jsonl" if block.lang == "jsonl" else "text/csv"
    return client.post(
        f"/api/v1/projects/{project.id}/import/", block.body, content_type=content_type
    )


def test_it_imports_every_import_example(alice, api_as):
    client = api_as(alice)
    examples = import_examples()
    assert len([e for e in examples if e[1] is None]) >= 3
    assert {b.lang for b, _ in examples} == {"jsonl", "csv"}
    for block, refusal in examples:
        if refusal is not None:
            continue
        expected = dict(COUNTS.findall(block.after))
        assert set(expected) == set(KIND_SETTINGS), f"no 'Tasks made' line after {block.body!r}"
        for label, count in expected.items():
            project = ProjectFactory(created_by=alice, **KIND_SETTINGS[label])
            project.memberships.create(user=alice, role="admin")
            resp = _import(client, project, block)
            assert resp.status_code == 201, (label, resp.content)
            assert resp.json() == {"tasks_created": int(count)}, (label, block.body)
            assert Task.objects.filter(project=project).count() == int(count)


def test_it_refuses_the_bad_import_example_as_documented(alice, api_as):
    client = api_as(alice)
    refused = [(b, r) for b, r in import_examples() if r is not None]
    assert refused
    for block, refusal in refused:
        project = ProjectFactory(created_by=alice, kind=Kind.PAIRWISE)
        project.memberships.create(user=alice, role="admin")
        resp = _import(client, project, block)
        assert resp.status_code == 400, resp.content
        assert resp.json() == json.loads(refusal.body)
        assert not project.prompts.exists()


@pytest.mark.parametrize("limit", [10])
def test_it_refuses_a_file_over_the_documented_size_limit(alice, api_as, settings, limit):
    settings.PREFLOOP_IMPORT_MAX_BYTES = limit
    project = ProjectFactory(created_by=alice)
    project.memberships.create(user=alice, role="admin")
    body = '{"prompt": "Hi", "completions": ["a", "b"]}\n'
    resp = api_as(alice).post(
        f"/api/v1/projects/{project.id}/import/", body, content_type="application/jsonl"
    )
    assert resp.status_code == 413
    detail = f"The file is {len(body)} bytes; imports are limited to {limit} bytes."
    assert resp.json() == {"detail": detail + " Split it into several files.", "limit_bytes": limit}
    documented = "The file is N bytes; imports are limited to M bytes. Split it into several files."
    assert documented in (DOCS / "import.md").read_text()
    assert "PREFLOOP_IMPORT_MAX_BYTES" in (DOCS / "import.md").read_text()
