from django.db import migrations, models
from django.db.models import Max, OuterRef, Subquery


def from_messages(apps, schema_editor):
    Ticket = apps.get_model("tickets", "Ticket")
    Message = apps.get_model("tickets", "Message")
    last_public = (Message.objects.filter(ticket=OuterRef("pk"), internal=False).order_by()
                   .values("ticket").annotate(m=Max("seq")).values("m")[:1])
    Ticket.objects.update(last_public_seq=Subquery(last_public))
    Ticket.objects.filter(last_public_seq__isnull=True).update(last_public_seq=0)


class Migration(migrations.Migration):

    dependencies = [
        ("tickets", "0004_read_marks_and_notices"),
    ]

    operations = [
        migrations.AddField(
            model_name="ticket",
            name="last_public_seq",
            field=models.PositiveIntegerField(default=0, null=True, verbose_name="last public message seq"),
        ),
        migrations.RunPython(from_messages, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="ticket",
            name="last_public_seq",
            field=models.PositiveIntegerField(default=0, verbose_name="last public message seq"),
        ),
    ]
