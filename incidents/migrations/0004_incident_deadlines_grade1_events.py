from django.db import migrations, models


class Migration(migrations.Migration):
    """Incidents keep their deadlines (the sweep counts each passed period) and
    carrier events name the grade-1 kinds (issue #16 item 4)."""

    dependencies = [
        ("incidents", "0003_bulk_job_idempotency"),
    ]

    operations = [
        migrations.AddField(
            model_name="incident",
            name="breaches",
            field=models.PositiveSmallIntegerField(default=0, verbose_name="deadlines passed"),
        ),
        migrations.AddField(
            model_name="incident",
            name="breached_at",
            field=models.DateTimeField(blank=True, null=True, verbose_name="last deadline passed at"),
        ),
        migrations.AlterField(
            model_name="incident",
            name="rule",
            field=models.CharField(
                blank=True,
                choices=[("", "Opened by hand"), ("backlog", "Backlog in a region"), ("lost", "Lost parcels in a region"),
                         ("stuck", "Parcels stuck in transit"), ("theft", "Parcels stolen"), ("robbery", "Parcels robbed"),
                         ("seizure", "Parcels seized"), ("traffic_accident", "Traffic accident"),
                         ("prohibited_items", "Prohibited items found")],
                default="", max_length=16, verbose_name="raised by rule",
            ),
        ),
        migrations.AlterField(
            model_name="logisticsevent",
            name="kind",
            field=models.CharField(
                choices=[("picked_up", "Picked up"), ("in_transit", "In transit"), ("out_for_delivery", "Out for delivery"),
                         ("delivered", "Delivered"), ("backlog", "Held in a backlog"), ("lost", "Lost"),
                         ("damaged", "Damaged"), ("stuck", "No movement for days"), ("returned", "Returned to sender"),
                         ("theft", "Stolen"), ("robbery", "Robbed"), ("seizure", "Seized"),
                         ("traffic_accident", "Traffic accident"), ("prohibited_items", "Prohibited items")],
                max_length=20, verbose_name="kind",
            ),
        ),
        migrations.AddIndex(
            model_name="incident",
            index=models.Index(fields=["status", "due_at"], name="incident_status_due"),
        ),
    ]
