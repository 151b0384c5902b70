# After 0004 (UPDATE: the old row versions with plaintext identifiers stay in the table's files as dead tuples)
# and 0005 (DROP COLUMN: PostgreSQL only hides the column; every live row still carries its plaintext bytes),
# resident ID and phone numbers in clear were still readable in the table's data files. VACUUM FULL rewrites
# the table, its TOAST table and its indexes into new files without dead tuples and with dropped columns
# nulled, and deletes the old files.
#
# VACUUM cannot run inside a transaction block, hence a non-atomic migration. It holds an ACCESS EXCLUSIVE
# lock on the consumer table while it runs and needs free disk space for a copy of the table: run it in a
# maintenance window. Older backups, WAL archives and replicas' history still hold the plaintext: see README,
# "Encrypted identifiers and database roles". On SQLite nothing is done.

from django.db import migrations

from portal.records import identifiers


def purge_plaintext(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM (FULL, ANALYZE) {connection.ops.quote_name(identifiers.CONSUMER_TABLE)}")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("records", "0006_transaction_monthly_partitions"),
    ]

    operations = [
        # Nothing to undo going back: the rewritten table holds the same rows.
        migrations.RunPython(purge_plaintext, migrations.RunPython.noop, atomic=False, elidable=False),
    ]
