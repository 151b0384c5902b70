"""The session store: Django's database sessions, with the read every signed-in request makes (the session of
the cookie's key, unexpired) written once and planned once per connection (portal.prepared), instead of
compiled through the ORM on every request. Everything else is Django's own (SESSION_ENGINE)."""

from __future__ import annotations

from typing import Any

from django.contrib.sessions.backends import db
from django.utils import timezone

from portal.prepared import prepared


class SessionStore(db.SessionStore):
    def _get_session_from_db(self) -> Any:
        """As Django's: the session of this key that has not expired, else None and the key forgotten (a
        new session is then made with a new key). Django also catches SuspiciousOperation here, which only
        its model lookups raise; this raw read raises none."""
        model = self.model
        columns = {f.name: f.column for f in model._meta.concrete_fields}
        sql = (
            f"SELECT {', '.join(columns.values())} FROM {model._meta.db_table} "  # noqa: S608 - names from _meta
            f"WHERE {columns['session_key']} = %s AND {columns['expire_date']} > %s"
        )
        found = list(model.objects.raw(prepared(sql), [self.session_key, timezone.now()]))
        if found:
            return found[0]
        self._session_key = None
        return None
