"""PostgreSQL: the credit scores' primary key holds consumer_id, the column Citus distributes them by with the
consumer's other rows (a distributed table's unique keys must include it: deploy/SCALING.md §3.1); `id`
stays first. Django keeps addressing scores by id; on SQLite nothing changes."""

from django.db import migrations

TABLE = "scoring_creditscore"


def _rekey(schema_editor, key: str) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'p'", [TABLE])
        (name,) = cursor.fetchone()
        cursor.execute(f"ALTER TABLE {TABLE} DROP CONSTRAINT {name}")
        cursor.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT {name} PRIMARY KEY {key}")


def forwards(apps, schema_editor):
    _rekey(schema_editor, "(id, consumer_id)")


def backwards(apps, schema_editor):
    _rekey(schema_editor, "(id)")


class Migration(migrations.Migration):
    dependencies = [
        ("scoring", "0003_model_governance"),
    ]

    operations = [
        migrations.RunPython(forwards, backwards, elidable=False),
    ]
