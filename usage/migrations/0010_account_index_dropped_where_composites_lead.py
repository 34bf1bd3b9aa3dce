"""The account foreign keys of reservations and usage events lose their single-column indexes: each table has
composite indexes that lead with account_id (the unique (account, request_id) among them), which serve every lookup
by account, so the extra index only cost a write on every insert (and every reservation's settle).

Only the index is dropped (DROP INDEX, a moment's lock); Django's own AlterField would drop and re-add the foreign
key constraint too, which checks every row of the table again under a lock that stops writes."""

import django.db.models.deletion
from django.db import migrations, models

_INDEXES = [("usage_reservation", "usage_reservation_account_id_b2f55edd"),
            ("usage_usageevent", "usage_usageevent_account_id_d5c6f58a")]  # fmt: skip


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0004_customers_server_keys_idempotency_portal"),
        ("usage", "0009_usage_event_api_key"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="reservation",
                    name="account",
                    field=models.ForeignKey(
                        db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name="reservations",
                        to="billing.account",
                    ),  # fmt: skip
                ),
                migrations.AlterField(
                    model_name="usageevent",
                    name="account",
                    field=models.ForeignKey(
                        db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name="usage_events",
                        to="billing.account",
                    ),  # fmt: skip
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    f'DROP INDEX IF EXISTS "{index}"', reverse_sql=f'CREATE INDEX "{index}" ON "{table}" ("account_id")'
                )
                for table, index in _INDEXES
            ],
        ),
    ]
