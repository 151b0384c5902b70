"""Each subject records the grant it was shown under. A nullable column: on PostgreSQL it is added to the
partitioned table and so to every month's partition (no rewrite); on SQLite ALTER TABLE ADD COLUMN keeps the
table and its append-only triggers. Subjects already sealed keep no grant, and the chain's encoding leaves
their bytes as they were (audit/chain.py, version 1)."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('audit', '0005_subject_monthly_partitions'),
    ]

    operations = [
        migrations.AddField(
            model_name='auditsubject',
            name='grant_id',
            field=models.BigIntegerField(blank=True, null=True, verbose_name='grant'),
        ),
    ]
