"""The error answers in the OpenAPI schema (/api/schema/), added to every operation.

drf-spectacular documents what a view returns when it succeeds; this hook adds what it
answers when it does not, with the bodies DRF and our views send, so the schema lists every
status code the server can answer (tests/test_api_contract.py holds it to that):

- 401 without a valid token, 429 over the rate limit (with Retry-After), on every operation;
- 404 on every path with an id (another project's ids answer 404 too);
- 400 where there is a body or a query string to validate, 415 where the body is parsed;
- the rest (403, 409, 413) per operation, in EXTRA below.
"""

ERROR = {
    "type": "object",
    "properties": {
        "detail": {"type": "string", "description": "What went wrong, for people."},
        "field": {"type": "string", "description": "The field at fault, when there is one."},
    },
    "required": ["detail"],
}
VALIDATION_ERROR = {
    "type": "object",
    "description": "Either a `detail` message (with `field`, or `errors` for an import: one "
    "{line, error} per bad line), or the messages of each bad field: {field: [message, ...]}.",
    "properties": {
        "detail": {"type": "string"},
        "field": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"line": {"type": "integer"}, "error": {"type": "string"}},
            },
        },
    },
    "additionalProperties": {
        "oneOf": [{"type": "array", "items": {}}, {"type": "object"}, {"type": "string"}]
    },
}
CONFLICT = {
    **ERROR,
    "properties": {
        **ERROR["properties"],
        "annotation_id": {
            "type": "integer",
            "description": "Already answered: the id of the stored answer.",
        },
    },
}
TOO_LARGE = {
    **ERROR,
    "properties": {**ERROR["properties"], "limit_bytes": {"type": "integer"}},
    "required": ["detail", "limit_bytes"],
}

DESCRIPTIONS = {
    400: "The request is invalid: the body names the fields at fault.",
    401: "No token, or an invalid one.",
    403: "Signed in, but not allowed (not an admin of the project, or not staff).",
    404: "No such object among the caller's projects (another project's ids answer 404).",
    405: "Method not allowed.",
    409: "The request conflicts with the object's state.",
    413: "The upload is larger than PREFLOOP_IMPORT_MAX_BYTES.",
    415: "The body's content type is not one the operation reads.",
    429: "Too many requests: retry after the number of seconds in Retry-After.",
}
BODIES = {400: "ValidationError", 409: "Conflict", 413: "TooLarge"}

# Status codes beyond the generic ones, per operation id.
EXTRA = {
    "v1_projects_create": [403],
    "v1_projects_members_create": [403],
    "v1_projects_import_create": [403, 413],
    "v1_projects_export_retrieve": [403],
    "v1_projects_export_summary_retrieve": [403],
    "v1_projects_annotations_list": [403],
    "v1_projects_audit_list": [403],
    "v1_tasks_annotations_create": [409],
    "v1_tasks_skip_create": [409],
    "v1_jobs_create": [403, 404],
    "v1_jobs_cancel_create": [409],
    "v1_models_merge_create": [409],
    "loop_retrieve": [403],
    "loop_update": [403],
    "v1_projects_loop_actions_create": [403, 409],
    "v1_projects_judges_list": [403],
    "v1_projects_judges_create": [403],
    "v1_judges_retrieve": [403],
    "v1_judges_partial_update": [403],
    "v1_judges_run_create": [403, 409],
    "v1_judges_resume_create": [403],
    # Prompt strategies and selection (docs/prompt-optimisation.md).
    "v1_projects_strategies_retrieve": [403],
    "v1_projects_strategies_create": [403],
    "v1_projects_strategies_partial_update": [403],
    "v1_projects_strategies_destroy": [403],
    "v1_projects_strategies_import_create": [403, 413],
    "v1_projects_strategies_outcomes_retrieve": [403],
    "v1_projects_prompt_selection_choose_create": [403, 409],
}
# Operations that read their body as it comes (any content type), never answering 415.
RAW_BODY = {"v1_projects_import_create", "v1_projects_strategies_import_create"}
RETRY_AFTER = {
    "Retry-After": {
        "schema": {"type": "integer"},
        "description": "Seconds until the next request is accepted.",
    }
}


def _response(code: int) -> dict:
    name = BODIES.get(code, "Error")
    response = {
        "description": DESCRIPTIONS[code],
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}},
    }
    if code == 429:
        response["headers"] = RETRY_AFTER
    return response


def document_errors(result: dict, generator, request, public) -> dict:
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(
        Error=ERROR, ValidationError=VALIDATION_ERROR, Conflict=CONFLICT, TooLarge=TOO_LARGE
    )
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            codes = {401, 429}
            if "{" in path:
                codes.add(404)
            query = [p for p in operation.get("parameters", []) if p.get("in") == "query"]
            if query or "requestBody" in operation:
                codes.add(400)
            if "requestBody" in operation and operation.get("operationId") not in RAW_BODY:
                codes.add(415)
            codes.update(EXTRA.get(operation.get("operationId"), []))
            responses = operation.setdefault("responses", {})
            for code in sorted(codes):
                responses.setdefault(str(code), _response(code))
    return result
