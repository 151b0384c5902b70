"""The session store (portal.accounts.sessions): Django's database sessions, read by a statement written
once; what it loads is what Django's own store loads, and an expired or unknown session loads nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.sessions.backends.db import SessionStore as DjangoStore
from django.contrib.sessions.models import Session
from django.utils import timezone

from portal.accounts.sessions import SessionStore

pytestmark = pytest.mark.django_db


def test_the_portal_uses_its_session_store():
    assert settings.SESSION_ENGINE == "portal.accounts.sessions"


def test_a_live_session_loads_as_djangos_store_loads_it():
    made = SessionStore()
    made["_auth_user_id"], made["note"] = "7", "kept"
    made.save()
    key = made.session_key
    assert SessionStore(key).load() == DjangoStore(key).load() == {"_auth_user_id": "7", "note": "kept"}


def test_an_expired_or_unknown_session_loads_nothing_and_its_key_is_forgotten():
    made = SessionStore()
    made["_auth_user_id"] = "7"
    made.save()
    key = made.session_key
    Session.objects.filter(session_key=key).update(expire_date=timezone.now() - timedelta(seconds=1))
    for asked in (key, "x" * 32):
        store = SessionStore(asked)
        assert store.load() == {} and store.session_key is None
        assert DjangoStore(asked).load() == {}
