"""Serializer fields that accept exactly what the OpenAPI schema says they accept."""

from django.db import models
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

DB_INT_MAX = 2**31 - 1  # an integer column (project ids, rounds)
DB_BIG_MAX = 2**63 - 1  # a bigint column (model, task, job ids)


class StrictBooleanField(serializers.BooleanField):
    """JSON true or false only: DRF's also takes 0, 1, "yes", "off"... which the schema's
    `boolean` does not allow."""

    def to_internal_value(self, data):
        if isinstance(data, bool):
            return data
        self.fail("invalid", input=data)


class StrictModelSerializer(serializers.ModelSerializer):
    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.BooleanField: StrictBooleanField,
    }


class StrictCharField(serializers.CharField):
    """A JSON string only: DRF's turns numbers into text, which the schema's `string` does not
    allow."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer only: DRF's also takes "12" and 12.0."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictFloatField(serializers.FloatField):
    """A JSON number only: DRF's also takes true, false and "0.5"."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        return super().to_internal_value(data)


@extend_schema_field({"type": "integer", "minimum": 1, "maximum": DB_BIG_MAX})
class IdField(serializers.PrimaryKeyRelatedField):
    """A related row's id, with its range in the schema (the API's JSON parser refuses a
    number past 64 bits before any field sees it)."""


def refuse_blank(serializer_class: type[serializers.Serializer], data) -> None:
    """DRF reads `?since=` from a query string as if `since` were not given; a blank value for
    anything but free text is refused instead (400 naming it), as the API's schema says."""
    fields = serializer_class().fields
    blank = [
        name for name, value in data.items()
        if value == "" and name in fields and not isinstance(fields[name], serializers.CharField)
    ]  # fmt: skip
    if blank:
        raise serializers.ValidationError(
            {name: ["Give a value, or leave the parameter out."] for name in blank}
        )


StrictModelSerializer.serializer_field_mapping.update(
    {
        models.CharField: StrictCharField,
        models.TextField: StrictCharField,
        models.IntegerField: StrictIntegerField,
        models.PositiveIntegerField: StrictIntegerField,
        models.PositiveSmallIntegerField: StrictIntegerField,
        models.SmallIntegerField: StrictIntegerField,
        models.BigIntegerField: StrictIntegerField,
        models.FloatField: StrictFloatField,
    }
)
