"""Issuing, checking and revoking API bearer tokens; and the one statement that reads a caller's user with
whether their membership is in force, for a token (with the token) and for a session (by id)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connections, models, router
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from portal.accounts.models import IN_FORCE_FLAG, ApiToken, Membership, Organisation, User
from portal.prepared import prepared
from portal.rows import Columns, columns

TOKEN_PREFIX = "cop_"  # noqa: S105 - makes a leaked token easy to scan for; not a secret


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def token_create(*, user: User) -> tuple[str, ApiToken]:
    """A new token for `user`; the secret is returned once and never stored."""
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user,
        key_hash=_digest(secret),
        prefix=secret[: len(TOKEN_PREFIX) + 6],
        expires_at=timezone.now() + timedelta(seconds=settings.API_TOKEN_TTL_SECONDS),
        auth_hash=user.get_session_auth_hash(),
    )
    return secret, token


@dataclass(frozen=True)
class _TokenStatement:
    sql: str
    parts: tuple[Columns, Columns, Columns]  # the token, its user, the user's organisation


_STATEMENTS: dict[str, _TokenStatement] = {}


def _column(db: str, model: type[models.Model], name: str) -> str:
    field = model._meta.get_field(name)
    if not isinstance(field, models.Field):
        raise TypeError(f"{model.__name__}.{name} is no column")
    return connections[db].ops.quote_name(field.column)


def _in_force(db: str) -> str:
    """Whether the membership of the user `u` is in force, in SQL with one parameter (the approved status):
    the condition of accounts.models.in_force_subquery."""
    quote = connections[db].ops.quote_name
    user_id, organisation_id, role = (_column(db, User, n) for n in ("id", "organisation", "role"))
    m = {name: _column(db, Membership, name) for name in ("user", "status", "role", "organisation")}
    return (
        f"EXISTS (SELECT 1 FROM {quote(Membership._meta.db_table)} m "  # noqa: S608 - names from _meta
        f"WHERE m.{m['user']} = u.{user_id} AND m.{m['status']} = %s AND m.{m['role']} = u.{role} "
        f"AND (m.{m['organisation']} = u.{organisation_id} "
        f"OR (u.{organisation_id} IS NULL AND m.{m['organisation']} IS NULL)))"
    )


_USER_STATEMENTS: dict[str, tuple[str, Columns, Columns]] = {}


def user_with_membership(pk: Any) -> User | None:
    """The user with this primary key, their organisation loaded with them (no query when read), and whether
    their membership is in force, as `users_with_membership(User.objects.select_related("organisation")
    .filter(pk=pk)).first()` gives them; None when there is none. Read on every request of a signed-in
    session: compiling that ORM query (a join and a correlated subquery) took longer than running it, so
    the statement is written once per database, like the token's, and planned once."""
    try:
        pk = User._meta.pk.to_python(pk)
    except ValidationError:
        return None  # a malformed id finds nobody
    db = router.db_for_read(User)
    statement = _USER_STATEMENTS.get(db)
    if statement is None:
        quote = connections[db].ops.quote_name
        user_part, organisation_part = columns(User, "u", db), columns(Organisation, "o", db)
        sql = (
            f"SELECT {user_part.select}, {organisation_part.select}, {_in_force(db)} "  # noqa: S608
            f"FROM {quote(User._meta.db_table)} u "
            f"LEFT JOIN {quote(Organisation._meta.db_table)} o ON o.{_column(db, Organisation, 'id')} = "
            f"u.{_column(db, User, 'organisation')} WHERE u.{_column(db, User, 'id')} = %s"
        )
        statement = _USER_STATEMENTS[db] = (prepared(sql), user_part, organisation_part)
    sql, user_part, organisation_part = statement
    with connections[db].cursor() as cursor:
        cursor.execute(sql, [Membership.Status.APPROVED, pk])
        row = cursor.fetchone()
    return None if row is None else _user_of_row(list(row), user_part, organisation_part, db)


def _user_of_row(values: list[Any], user_part: Columns, organisation_part: Columns, db: str) -> User:
    """The user of a row ending in (user's columns, organisation's columns or NULLs, in-force flag), with the
    organisation cached on it and the flag set: reading either later costs no query of its own."""
    end = len(user_part.attnames)
    user = user_part.instance(values[:end], db)
    organisation_values = values[end:-1]
    organisation = (
        None if organisation_values[0] is None else organisation_part.instance(organisation_values, db)
    )
    User._meta.get_field("organisation").set_cached_value(user, organisation)
    user.__dict__[IN_FORCE_FLAG] = bool(values[-1])
    return user


def _token_statement(db: str) -> _TokenStatement:
    """The token with its user, the user's organisation and whether the user's membership is in force, in one
    statement written once per database from the models' metadata. Checking a token runs on every API
    request, and compiling the equivalent ORM query (a select_related and a correlated subquery) took several
    times longer than running it; the condition is that of accounts.models.in_force_subquery."""
    statement = _STATEMENTS.get(db)
    if statement is not None:
        return statement
    quote = connections[db].ops.quote_name
    parts = (columns(ApiToken, "t", db), columns(User, "u", db), columns(Organisation, "o", db))
    selected = ", ".join(part.select for part in parts)
    user_id, organisation_id = _column(db, User, "id"), _column(db, User, "organisation")
    sql = (
        f"SELECT {selected}, {_in_force(db)} FROM {quote(ApiToken._meta.db_table)} t "  # noqa: S608 - _meta
        f"JOIN {quote(User._meta.db_table)} u ON u.{user_id} = t.{_column(db, ApiToken, 'user')} "
        f"LEFT JOIN {quote(Organisation._meta.db_table)} o ON o.{_column(db, Organisation, 'id')} = "
        f"u.{organisation_id} WHERE t.{_column(db, ApiToken, 'key_hash')} = %s"
    )
    statement = _STATEMENTS[db] = _TokenStatement(prepared(sql), parts)
    return statement


def _token_with_user(key_hash: str) -> ApiToken | None:
    """The token of this hash, its user and organisation loaded with it (no query when read), and the user's
    membership flag set, as `ApiToken.objects.select_related("user__organisation")` with the in-force
    annotation would give them; None when no token has it."""
    db = router.db_for_read(ApiToken)
    statement = _token_statement(db)
    with connections[db].cursor() as cursor:
        cursor.execute(statement.sql, [Membership.Status.APPROVED, key_hash])
        row = cursor.fetchone()
    if row is None:
        return None
    token_part, user_part, organisation_part = statement.parts
    values = list(row)
    end = len(token_part.attnames)
    token = token_part.instance(values[:end], db)
    user = _user_of_row(values[end:], user_part, organisation_part, db)
    ApiToken._meta.get_field("user").set_cached_value(token, user)
    return token


def token_check(secret: str) -> ApiToken | None:
    """The live token for this secret, with its user and organisation, or None: a token stops working when it
    expires or is revoked, and when its user is deactivated, loses their organisation or changes password."""
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > 100:
        return None
    token = _token_with_user(_digest(secret))
    if token is None or token.revoked_at is not None or token.expires_at <= timezone.now():
        return None
    user = token.user
    if not user.is_active or (user.organisation_id is None and user.role != User.Role.ADMIN):
        return None
    if not token.auth_hash or not constant_time_compare(token.auth_hash, user.get_session_auth_hash()):
        return None
    return token


def token_revoke(*, token: ApiToken) -> None:
    if token.revoked_at is None:
        ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
