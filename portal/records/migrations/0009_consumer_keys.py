"""Key tables for the identifiers a request arrives with (public id, resident ID hash, phone hash), filled
from the consumers; their primary keys now hold the uniqueness records_consumer held, which a table
distributed by consumer id cannot (Citus: a unique key must include the distribution column)."""

import django.db.models.deletion
import portal.records.models
from django.db import migrations, models


def fill(apps, schema_editor):
    from portal.records.keys import consumer_keys_fill

    consumer_keys_fill()


class Migration(migrations.Migration):

    dependencies = [
        ('records', '0008_transaction_partition_functions_private'),
    ]

    operations = [
        migrations.CreateModel(
            name='ConsumerPhone',
            fields=[
                ('pk', models.CompositePrimaryKey('phone_hmac', 'consumer', blank=True, editable=False, primary_key=True, serialize=False)),
                ('phone_hmac', models.CharField(max_length=80, verbose_name='mobile number (HMAC)')),
                ('consumer', models.ForeignKey(db_constraint=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='records.consumer')),
            ],
            options={
                'verbose_name': 'consumer mobile number',
                'verbose_name_plural': 'consumer mobile numbers',
            },
        ),
        migrations.CreateModel(
            name='ConsumerPublicId',
            fields=[
                ('public_id', models.CharField(max_length=17, primary_key=True, serialize=False, verbose_name='public id')),
                ('consumer', models.ForeignKey(db_constraint=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='records.consumer')),
            ],
            options={
                'verbose_name': 'consumer public id',
                'verbose_name_plural': 'consumer public ids',
            },
        ),
        migrations.CreateModel(
            name='ConsumerResidentId',
            fields=[
                ('resident_id_hmac', models.CharField(max_length=80, primary_key=True, serialize=False, verbose_name='resident ID number (HMAC)')),
                ('consumer', models.ForeignKey(db_constraint=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='records.consumer')),
            ],
            options={
                'verbose_name': 'consumer resident ID',
                'verbose_name_plural': 'consumer resident IDs',
            },
        ),
        migrations.RemoveConstraint(
            model_name='consumer',
            name='consumer_resident_id_hmac',
        ),
        migrations.AlterField(
            model_name='consumer',
            name='public_id',
            field=models.CharField(db_index=True, default=portal.records.models.new_public_id, max_length=17, verbose_name='public id'),
        ),
        migrations.AddIndex(
            model_name='consumer',
            index=models.Index(fields=['resident_id_hmac'], name='consumer_resident_id_hmac'),
        ),
        migrations.RunPython(fill, migrations.RunPython.noop, elidable=False),
    ]
