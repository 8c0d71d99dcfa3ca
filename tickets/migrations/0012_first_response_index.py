# The reports' first responses (issue #14 item 6): the period's answered tickets with their
# agent and queue read from this index alone, not from the wide ticket rows.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('tickets', '0011_board_indexes'),
    ]

    operations = [
        migrations.AddIndex(
            model_name='ticket',
            index=models.Index(condition=models.Q(('first_response_at__isnull', False)), fields=['created_at'], include=('first_response_at', 'assignee', 'queue'), name='ticket_first_response'),
        ),
    ]
