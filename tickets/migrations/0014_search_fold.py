# What is said after a ticket's opening request reaches its search text in
# batches (``tickets.services.conversation.fold_search_text``, every 15 s)
# instead of with every message. The tickets already there have their whole
# conversation in their text: they are searched up to their last message.

from django.conf import settings
from django.db import migrations, models
from django.db.models import F
from django.utils import timezone


def searched_up_to_now(apps, schema_editor):
    Ticket = apps.get_model("tickets", "Ticket")
    SearchFold = apps.get_model("tickets", "SearchFold")
    Ticket.objects.update(searched_seq=F("last_seq"))
    # the first fold looks at what is said from now on, not at every message ever
    SearchFold.objects.update_or_create(pk=1, defaults={"through": timezone.now()})


class Migration(migrations.Migration):

    dependencies = [
        ('tickets', '0013_no_duplicate_indexes'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='SearchFold',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('through', models.DateTimeField(blank=True, null=True, verbose_name='through')),
            ],
        ),
        migrations.AddField(
            model_name='ticket',
            name='searched_seq',
            field=models.PositiveIntegerField(default=0, editable=False, verbose_name='searched up to seq'),
        ),
        migrations.AddIndex(
            model_name='message',
            index=models.Index(fields=['created_at'], name='message_created'),
        ),
        migrations.RunPython(searched_up_to_now, migrations.RunPython.noop, elidable=True),
    ]
