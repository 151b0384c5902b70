"""PostgreSQL: transactions partitioned by month of occurred_at (see portal/records/partitions.py).

The primary key becomes (id, occurred_at) in SQL while Django keeps addressing rows by id; existing rows are
copied into monthly partitions (two years back and three months ahead, plus a default partition), with the
identity sequence, checks, foreign keys and indexes re-created. The SQL functions that create partitions
(SECURITY DEFINER, owned by the role that migrates) are created here. No table references transactions by
a foreign key. On SQLite nothing changes: the table stays a plain table.
"""

from django.db import migrations

from portal.records import partitions


def partition(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        partitions.convert_to_partitioned(schema_editor.connection)


def unpartition(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        partitions.revert_to_plain(schema_editor.connection)


class Migration(migrations.Migration):
    atomic = True

    dependencies = [
        ("records", "0005_consumer_identifiers_plaintext_dropped"),
    ]

    operations = [
        migrations.RunPython(partition, unpartition, elidable=False),
    ]
