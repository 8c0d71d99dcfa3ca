# The market board's index (issue #14 item 5): chats' first replies in a window, and the chats
# still waiting at a moment, without a full scan. (Ratings by time are indexed by 0010.)

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('tickets', '0010_report_figures'),
    ]

    operations = [
        migrations.AddIndex(
            model_name='ticket',
            index=models.Index(condition=models.Q(('channel', 'chat')), fields=['first_response_at'], name='ticket_chat_first_response'),
        ),
    ]
