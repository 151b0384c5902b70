"""Witness cosignatures of checkpoints; an index for the accesses under a grant; the append-only rule (see
audit/triggers.py) on the Merkle tree's nodes and on the cosignatures."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

from audit import triggers


def install(apps, schema_editor):
    triggers.install(schema_editor.connection)


class Migration(migrations.Migration):

    dependencies = [
        ('audit', '0007_merkle_tree'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='AuditCosignature',
            fields=[
                ('id', models.BigAutoField(primary_key=True, serialize=False)),
                ('witness_key', models.CharField(max_length=300, verbose_name='witness key')),
                ('signature', models.TextField(verbose_name='cosignature line')),
                ('cosigned_at', models.DateTimeField(verbose_name='cosigned at')),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now, verbose_name='stored at')),
            ],
            options={
                'verbose_name': 'audit checkpoint cosignature',
                'verbose_name_plural': 'audit checkpoint cosignatures',
            },
        ),
        migrations.AddIndex(
            model_name='auditevent',
            index=models.Index(fields=['grant_id', 'occurred_at'], name='audit_grant_time'),
        ),
        migrations.AddField(
            model_name='auditcosignature',
            name='checkpoint',
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='cosignatures', to='audit.auditcheckpoint', verbose_name='checkpoint'),
        ),
        migrations.AddConstraint(
            model_name='auditcosignature',
            constraint=models.UniqueConstraint(fields=('checkpoint', 'witness_key'), name='audit_cosignature_unique'),
        ),
        migrations.RunPython(install, migrations.RunPython.noop, elidable=False),
    ]
