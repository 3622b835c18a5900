"""The API's JSON parser: DRF's, with the refusals of webapp/safejson.py and a size limit, so
a body a database cannot store answers 400 with the field named instead of 500."""

import json

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from webapp import safejson


class SafeJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        data = stream.read(limit + 1) if stream is not None else b""
        if len(data) > limit:
            raise ParseError({"detail": f"The body is larger than {limit} bytes.", "field": "body"})
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError as exc:
            raise ParseError(
                {"detail": f"The body is not {encoding} text (byte {exc.start}).", "field": "body"}
            ) from None
        try:
            return safejson.loads(text)
        except safejson.UnsafeJSON as exc:
            field = exc.field or "body"
            raise ParseError({"detail": f"{field}: {exc.message}.", "field": field}) from None
        except json.JSONDecodeError as exc:
            where = f"line {exc.lineno}, column {exc.colno}"
            raise ParseError(
                {"detail": f"JSON parse error: {exc.msg} ({where}).", "field": "body"}
            ) from None
