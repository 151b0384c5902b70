"""PostgreSQL: primary keys that hold consumer_id on the tables that Citus distributes by consumer, and the
transactions' foreign key to accounts on (account_id, consumer_id), so that every key and foreign key of
these tables includes the distribution column (Citus refuses a unique key or a foreign key between
distributed tables without it: deploy/SCALING.md §3.1). `id` stays first in each key, so lookups by id and
the transaction id watermark still use the primary key's index. The transaction partition functions are
re-created: a new month is made with PARTITION OF, so it carries exactly its parent's constraints.

Django keeps addressing rows by id (its state is unchanged); on SQLite nothing changes.
"""

from django.db import migrations

from portal.records import partitions

KEYS = {
    # table: (primary key before, primary key after)
    "records_account": ("(id)", "(id, consumer_id)"),
    "records_segmentmembership": ("(id)", "(id, consumer_id)"),
    "records_transaction": ("(id, occurred_at)", "(id, consumer_id, occurred_at)"),
}


def _account_foreign_key(cursor):
    cursor.execute(
        "SELECT conname FROM pg_constraint WHERE conrelid = 'records_transaction'::regclass "
        "AND confrelid = 'records_account'::regclass AND contype = 'f'"
    )
    return cursor.fetchone()[0]


def _primary_key(cursor, table):
    cursor.execute("SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'p'", [table])
    return cursor.fetchone()[0]


def _rekey(schema_editor, *, after: bool):
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        foreign_key = _account_foreign_key(cursor)
        statements = [f"ALTER TABLE records_transaction DROP CONSTRAINT {foreign_key}"]
        for table, (before_key, after_key) in KEYS.items():
            name = _primary_key(cursor, table)
            key = after_key if after else before_key
            statements += [
                f"ALTER TABLE {table} DROP CONSTRAINT {name}",
                f"ALTER TABLE {table} ADD CONSTRAINT {name} PRIMARY KEY {key}",
            ]
        columns = "(account_id, consumer_id)" if after else "(account_id)"
        referenced = "(id, consumer_id)" if after else "(id)"
        statements.append(
            f"ALTER TABLE records_transaction ADD CONSTRAINT {foreign_key} FOREIGN KEY {columns} "
            f"REFERENCES records_account {referenced} DEFERRABLE INITIALLY DEFERRED"
        )
        for statement in statements:
            cursor.execute(statement)
    if partitions.partitioned(connection):
        with connection.cursor() as cursor:
            cursor.execute("SELECT relnamespace::regnamespace::text FROM pg_class WHERE oid = %s::regclass", [partitions.TABLE])
            schema = cursor.fetchone()[0]
            for statement in partitions.functions_sql(schema):
                cursor.execute(statement)


def forwards(apps, schema_editor):
    _rekey(schema_editor, after=True)


def backwards(apps, schema_editor):
    _rekey(schema_editor, after=False)


class Migration(migrations.Migration):
    dependencies = [
        ("records", "0009_consumer_keys"),
    ]

    operations = [
        migrations.RunPython(forwards, backwards, elidable=False),
    ]
