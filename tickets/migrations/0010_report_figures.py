"""The chat report's stored figure (issue #14 item 6): each agent reply in a
chat ticket that ends a buyer's wait keeps when that wait began
(``Message.waited_from``), and each ticket the start of the wait still open
(``Ticket.buyer_waiting_since``); both backfilled here from the conversations
as they stand, in two statements (window functions, PostgreSQL and SQLite
alike). Plus the indexes the reports' period filters use."""

from django.conf import settings
from django.db import migrations, models

# per public buyer/agent message: how many agent replies came before it in its
# ticket (``answered``: the buyer messages after the k-th reply and the
# (k+1)-th reply share k, a "stretch") and how many the ticket has in all;
# then who opened each stretch and when
STRETCHES = """
WITH said AS (
    SELECT m.id, m.ticket_id, m.seq, m.author_role, m.created_at,
           COALESCE(SUM(CASE WHEN m.author_role = 'agent' THEN 1 ELSE 0 END) OVER (
               PARTITION BY m.ticket_id ORDER BY m.seq ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS answered,
           SUM(CASE WHEN m.author_role = 'agent' THEN 1 ELSE 0 END) OVER (PARTITION BY m.ticket_id) AS replies
    FROM tickets_message m
    WHERE m.internal = %s AND m.author_role IN ('buyer', 'agent')
), stretch AS (
    SELECT id, ticket_id, author_role, answered, replies,
           FIRST_VALUE(author_role) OVER (PARTITION BY ticket_id, answered ORDER BY seq) AS opened_by,
           FIRST_VALUE(created_at) OVER (PARTITION BY ticket_id, answered ORDER BY seq) AS opened_at
    FROM said
)
"""


def backfill(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            STRETCHES + "UPDATE tickets_message SET waited_from = stretch.opened_at FROM stretch, tickets_ticket t "
            "WHERE tickets_message.id = stretch.id AND t.id = stretch.ticket_id AND t.channel = 'chat' "
            "AND stretch.author_role = 'agent' AND stretch.opened_by = 'buyer'", [False])
        cursor.execute(
            STRETCHES + "UPDATE tickets_ticket SET buyer_waiting_since = unanswered.opened_at FROM "
            "(SELECT DISTINCT ticket_id, opened_at FROM stretch WHERE answered = replies AND opened_by = 'buyer') unanswered "
            "WHERE tickets_ticket.id = unanswered.ticket_id", [False])


class Migration(migrations.Migration):

    dependencies = [
        ('tickets', '0009_tags_views_search'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='message',
            name='waited_from',
            field=models.DateTimeField(blank=True, editable=False, null=True, verbose_name='buyer waited from'),
        ),
        migrations.AddField(
            model_name='ticket',
            name='buyer_waiting_since',
            field=models.DateTimeField(blank=True, editable=False, null=True, verbose_name='buyer waiting since'),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
        migrations.AddIndex(
            model_name='message',
            index=models.Index(condition=models.Q(('waited_from__isnull', False)), fields=['created_at'], include=('waited_from', 'author', 'ticket'), name='message_chat_reply'),
        ),
        migrations.AddIndex(
            model_name='rating',
            index=models.Index(fields=['created_at'], name='rating_created'),
        ),
        migrations.AddIndex(
            model_name='ticket',
            index=models.Index(condition=models.Q(('resolved_at__isnull', False)), fields=['resolved_at'], name='ticket_resolved'),
        ),
    ]
