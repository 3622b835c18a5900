"""API token authentication: DRF's `Token` scheme, with its lookup written as one statement.

Every API request runs this, and DRF's ORM lookup cost more CPU than the rest of a "submit"
(bench/labeling_load.py). Same header (`Authorization: Token <key>`), same tokens (the
`authtoken` table), same errors as `rest_framework.authentication.TokenAuthentication`.
"""

from django.contrib.auth import get_user_model
from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions
from rest_framework.authtoken.models import Token

from webapp import sql


class TokenAuthentication(authentication.TokenAuthentication):
    def authenticate_credentials(self, key: str):
        User = get_user_model()
        statement = f"""
            SELECT {sql.columns(User, "u")}
            FROM {sql.table(Token)} t JOIN {sql.table(User)} u ON u.id = t.user_id
            WHERE t.key = %s
        """  # noqa: S608 -- table and column names only
        row = sql.one(statement, [key])
        if row is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        user = sql.instance(User, row)
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        return user, sql.loaded(Token(key=key, user=user))
