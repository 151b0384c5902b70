"""manage.py identifiers_rotate_key [--rehash] [--batch-size N]: re-encrypt consumers' identifiers under the
current key (the first of IDENTIFIER_KEYS), and with --rehash recompute their search hashes under the current
HMAC key (the first of IDENTIFIER_HMAC_KEY).

Without downtime: every listed key keeps decrypting and every listed HMAC key keeps being searched while rows
move over, keyset batch by keyset batch, each batch one UPDATE in its own transaction with its rows locked.
Interrupted, it resumes where it stopped (only rows not yet under the current keys are selected). Once it
reports that nothing is left, the old key can be removed from the settings.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

from portal.records import identifiers
from portal.records.identifiers import CONSUMER_TABLE, ENCRYPTED_COLUMNS, HASH_COLUMNS, KINDS
from portal.records.keys import consumer_keys_sync

DEFAULT_BATCH = 2000


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


@dataclass
class Rotation:
    key_id: str
    hmac_key_id: str | None  # None: hashes are left as they are

    def _stale(self) -> tuple[str, list[str]]:
        """SQL condition (and its parameters) of a row that still needs work."""
        checks: list[tuple[str, str]] = [(ENCRYPTED_COLUMNS[kind], self.key_id) for kind in KINDS]
        if self.hmac_key_id is not None:
            checks += [(HASH_COLUMNS[kind], self.hmac_key_id) for kind in KINDS]
        # substr, not LIKE: key ids may contain "_", a LIKE wildcard.
        sql = " OR ".join(f"substr({column}, 1, %s) <> %s" for column, _ in checks)
        params: list = []
        for _, key_id in checks:
            params += [len(key_id) + 1, f"{key_id}:"]
        return f"({sql})", params

    def remaining(self) -> int:
        condition, params = self._stale()
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM {CONSUMER_TABLE} WHERE {condition}", params)  # noqa: S608
            return cursor.fetchone()[0]

    def batch(self, after: int, size: int) -> tuple[int, int | None]:
        """Rewrite the next `size` stale rows with ids above `after`: (rows rewritten, last id seen)."""
        ring = identifiers.keyring()
        condition, params = self._stale()
        columns = [ENCRYPTED_COLUMNS[kind] for kind in KINDS]
        lock = " FOR NO KEY UPDATE" if connection.vendor == "postgresql" else ""
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                f"SELECT id, {', '.join(columns)} FROM {CONSUMER_TABLE} "  # noqa: S608
                f"WHERE id > %s AND {condition} ORDER BY id LIMIT %s{lock}",
                [after, *params, size],
            )
            rows = cursor.fetchall()
            if not rows:
                return 0, None
            targets: tuple[str, ...] = tuple(ENCRYPTED_COLUMNS[kind] for kind in KINDS)
            if self.hmac_key_id is not None:
                targets += tuple(HASH_COLUMNS[kind] for kind in KINDS)
            values: list = []
            for row in rows:
                plain = {kind: ring.decrypt(kind, token) for kind, token in zip(KINDS, row[1:], strict=True)}
                values.append(row[0])
                values += [ring.encrypt(kind, plain[kind]) for kind in KINDS]
                if self.hmac_key_id is not None:
                    values += [ring.digest(kind, plain[kind]) for kind in KINDS]
            cursor.execute(identifiers.update_from_values_sql(CONSUMER_TABLE, targets, len(rows)), values)
            if self.hmac_key_id is not None:
                consumer_keys_sync(consumer_ids=[row[0] for row in rows])
        return len(rows), rows[-1][0]


class Command(BaseCommand):
    help = "Re-encrypt consumers' resident ID and phone numbers under the current key (and re-hash them)."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--rehash",
            action="store_true",
            help="Also recompute the search hashes under the current (first) IDENTIFIER_HMAC_KEY.",
        )
        parser.add_argument("--batch-size", type=positive_int, default=DEFAULT_BATCH)

    def handle(self, *args, rehash: bool, batch_size: int, **options) -> None:
        ring = identifiers.keyring()
        if rehash and len(ring.hmac_keys) < 2:
            raise CommandError(
                "--rehash needs the new HMAC key first and the old one second in IDENTIFIER_HMAC_KEY, "
                "so that searches keep finding rows not yet re-hashed"
            )
        rotation = Rotation(ring.current_key_id, ring.current_hmac_key_id if rehash else None)
        total = rotation.remaining()
        target = f"key {rotation.key_id}" + (f" and HMAC key {rotation.hmac_key_id}" if rehash else "")
        self.stdout.write(f"{total} consumers to move to {target}")
        done, after = 0, 0
        while True:
            count, last = rotation.batch(after, batch_size)
            if last is None:
                break
            done, after = done + count, last
            self.stdout.write(f"rotated {done}/{total}")
        left = rotation.remaining()
        if left:
            # Rows written meanwhile under an older configuration (a process not yet restarted): run again.
            raise CommandError(f"{left} consumers are still under an older key: run the command again")
        retired = [key_id for key_id, _ in ring.encryption_keys[1:]]
        if rehash:
            retired += [f"HMAC {key_id}" for key_id, _ in ring.hmac_keys[1:]]
        self.stdout.write(
            self.style.SUCCESS(f"done: {done} consumers rewritten, every consumer is under {target}")
            + (f"; no longer needed: {', '.join(retired)}" if retired else "")
        )
