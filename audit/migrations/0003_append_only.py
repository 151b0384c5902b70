"""Append-only audit tables: triggers that refuse UPDATE, DELETE and TRUNCATE (see audit/triggers.py).

Vendor-specific SQL, chosen by audit.triggers for the connection at hand. On SQLite, Django drops a table's
triggers whenever a later migration rebuilds the table; the post_migrate handler of audit.apps re-creates them.
"""

from django.db import migrations

from audit import triggers


def install(apps, schema_editor):
    triggers.install(schema_editor.connection)


def uninstall(apps, schema_editor):
    triggers.uninstall(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0002_checkpoint"),
    ]

    operations = [
        migrations.RunPython(install, uninstall, elidable=False),
    ]
