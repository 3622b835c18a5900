"""The `<id:...>` path converter of the API: an integer that fits a database id.

Django's `int` takes any run of digits, and a number past the 64-bit range fails inside the
database driver (a 500 on SQLite) instead of matching nothing. Registered once, on import.
"""

from django.urls import register_converter

ID_MAX = 2**63 - 1


class IdConverter:
    regex = "[0-9]{1,19}"

    def to_python(self, value: str) -> int:
        number = int(value)
        if number > ID_MAX:
            raise ValueError("beyond the id range")  # Django answers 404
        return number

    def to_url(self, value: int) -> str:
        return str(value)


register_converter(IdConverter, "id")
