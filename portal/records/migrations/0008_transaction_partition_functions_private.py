"""PostgreSQL: the functions that create the transactions table's monthly partitions are no longer PUBLIC to
execute; deploy/postgres/create-roles.sh grants EXECUTE to the application's role, which runs the periodic
job. Nothing on SQLite (or while the table is plain)."""

from django.db import migrations

from portal.records import partitions


def private(apps, schema_editor):
    partitions.functions_private(schema_editor.connection)


def public(apps, schema_editor):
    partitions.functions_public(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [
        ("records", "0007_consumer_plaintext_purged"),
    ]

    operations = [
        migrations.RunPython(private, public, elidable=False),
    ]
