"""Key rotation of consumers' identifiers: every row stays readable during and after it, and searchable."""

from __future__ import annotations

import base64
import io
import os
from datetime import date

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.db import connection

from portal.records import identifiers, loader, synthetic
from portal.records.management.commands.identifiers_rotate_key import Rotation
from portal.records.models import Consumer
from tests.records.test_keys import derived_rows, key_rows

END = date(2026, 11, 1)
SEED = 23
COUNT = 40


def entry(key_id: str) -> str:
    return f"{key_id}:{base64.b64encode(os.urandom(32)).decode()}"


def stored_prefixes(column: str) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT DISTINCT substr({column}, 1, 3) FROM records_consumer")  # noqa: S608
        return {row[0] for row in cursor.fetchall()}


@pytest.fixture
def old_keys(settings):
    settings.IDENTIFIER_KEYS, settings.IDENTIFIER_HMAC_KEY = entry("k1"), entry("h1")
    return settings.IDENTIFIER_KEYS, settings.IDENTIFIER_HMAC_KEY


@pytest.fixture
def world(old_keys, db) -> dict[str, synthetic.ConsumerRow]:
    loader.load(seed=SEED, consumers=COUNT, end=END)
    return {row.public_id: row for row in synthetic.generate(SEED, 0, COUNT, END)}


def read_all() -> dict[str, tuple[str, str]]:
    return {c.public_id: (c.resident_id, c.phone) for c in Consumer.objects.all()}


def expected(world) -> dict[str, tuple[str, str]]:
    return {public_id: (row.resident_id, row.phone) for public_id, row in world.items()}


def test_rotation_leaves_every_row_readable_with_the_new_key_alone(settings, old_keys, world):
    old, _ = old_keys
    new = entry("k2")
    settings.IDENTIFIER_KEYS = f"{new},{old}"
    out = io.StringIO()
    call_command("identifiers_rotate_key", "--batch-size", "7", stdout=out)
    assert f"{COUNT} consumers to move to key k2" in out.getvalue()
    assert f"rotated {COUNT}/{COUNT}" in out.getvalue()
    assert "no longer needed: k1" in out.getvalue()
    assert stored_prefixes("resident_id_encrypted") == stored_prefixes("phone_encrypted") == {"k2:"}

    settings.IDENTIFIER_KEYS = new  # the old key removed from the settings
    assert read_all() == expected(world)


def test_rows_stay_readable_halfway_through_and_the_rotation_resumes(settings, old_keys, world):
    old, _ = old_keys
    settings.IDENTIFIER_KEYS = f"{entry('k2')},{old}"
    rotation = Rotation(key_id="k2", hmac_key_id=None)
    rewritten, _last = rotation.batch(0, 10)  # an interrupted run: one batch done
    assert rewritten == 10 and rotation.remaining() == COUNT - 10
    assert stored_prefixes("resident_id_encrypted") == {"k1:", "k2:"}
    assert read_all() == expected(world)  # no downtime: both keys decrypt meanwhile

    out = io.StringIO()
    call_command("identifiers_rotate_key", stdout=out)
    assert f"{COUNT - 10} consumers to move" in out.getvalue()
    assert rotation.remaining() == 0


def test_the_old_key_cannot_be_dropped_before_the_rotation(settings, old_keys, world):
    settings.IDENTIFIER_KEYS = entry("k2")
    with pytest.raises(identifiers.DecryptionError, match="no configured identifier key has the id 'k1'"):
        read_all()


def test_rehash_keeps_exact_search_working_under_the_new_hmac_key_alone(settings, old_keys, world):
    _, old_hmac = old_keys
    new_hmac = entry("h2")
    settings.IDENTIFIER_HMAC_KEY = f"{new_hmac},{old_hmac}"
    # Before the re-hash, a search under both keys finds the rows hashed under the old one.
    some = list(world.values())[:5]
    for row in some:
        hashes = identifiers.search_hashes(identifiers.PHONE, row.phone)
        assert Consumer.objects.get(phone_hmac__in=hashes).public_id == row.public_id

    call_command("identifiers_rotate_key", "--rehash", stdout=io.StringIO())
    assert stored_prefixes("resident_id_hmac") == stored_prefixes("phone_hmac") == {"h2:"}
    assert key_rows() == derived_rows()  # the key tables follow the new hashes

    settings.IDENTIFIER_HMAC_KEY = new_hmac
    for row in world.values():
        found = Consumer.objects.get(
            resident_id_hmac__in=identifiers.search_hashes(identifiers.RESIDENT_ID, row.resident_id)
        )
        assert found.public_id == row.public_id
        assert (
            Consumer.objects.get(phone_hmac__in=identifiers.search_hashes(identifiers.PHONE, row.phone))
            == found
        )
    assert read_all() == expected(world)


def test_rehash_needs_the_old_hmac_key_listed_second(old_keys, world):
    with pytest.raises(CommandError, match="new HMAC key first and the old one second"):
        call_command("identifiers_rotate_key", "--rehash", stdout=io.StringIO())


def test_nothing_to_do_is_reported_not_an_error(old_keys, world):
    out = io.StringIO()
    call_command("identifiers_rotate_key", stdout=out)
    assert "0 consumers to move to key k1" in out.getvalue()
    assert "every consumer is under key k1" in out.getvalue()


def test_bad_keys_are_a_configuration_error(settings, world):
    settings.IDENTIFIER_KEYS = "k2:dG9vIHNob3J0"
    with pytest.raises(ImproperlyConfigured):
        call_command("identifiers_rotate_key", stdout=io.StringIO())
