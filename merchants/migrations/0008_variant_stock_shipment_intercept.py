import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    """Variant stock for order changes "if stock allows", and the carrier
    intercept request recorded on a shipment (issue #16 item 6)."""

    dependencies = [
        ("merchants", "0007_credit_policy_and_payout_review"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="VariantStock",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("sku", models.CharField(max_length=64, verbose_name="SKU")),
                ("variant", models.CharField(max_length=64, verbose_name="variant")),
                ("on_hand", models.PositiveIntegerField(default=0, verbose_name="on hand")),
                ("updated_at", models.DateTimeField(auto_now=True, verbose_name="updated at")),
                ("merchant", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="stock",
                                               to="merchants.merchant")),
            ],
            options={
                "verbose_name": "variant stock",
                "verbose_name_plural": "variant stock",
                "ordering": ["merchant", "sku", "variant"],
                "constraints": [
                    models.UniqueConstraint(fields=("merchant", "sku", "variant"), name="stock_one_row_per_variant"),
                    models.CheckConstraint(condition=models.Q(("on_hand__gte", 0)), name="stock_on_hand_non_negative"),
                ],
            },
        ),
        migrations.CreateModel(
            name="ShipmentIntercept",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("ticket_id", models.BigIntegerField(blank=True, null=True, verbose_name="ticket id")),
                ("reason", models.CharField(max_length=255, verbose_name="reason")),
                ("shipment_status_before", models.CharField(max_length=20,
                                                            verbose_name="logistics status when requested")),
                ("requested_at", models.DateTimeField(default=django.utils.timezone.now, verbose_name="requested at")),
                ("order", models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name="intercepts",
                                            to="merchants.order")),
                ("requested_by", models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name="+",
                                                   to=settings.AUTH_USER_MODEL)),
                ("resend_task", models.OneToOneField(on_delete=django.db.models.deletion.PROTECT,
                                                     related_name="intercept", to="merchants.resendtask")),
                ("shipment", models.OneToOneField(on_delete=django.db.models.deletion.PROTECT,
                                                  related_name="intercept", to="merchants.shipment")),
            ],
            options={
                "verbose_name": "shipment intercept",
                "verbose_name_plural": "shipment intercepts",
                "ordering": ["-requested_at", "-id"],
            },
        ),
    ]
