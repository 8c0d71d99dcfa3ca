from django.db import migrations, models
from django.db.models import Count


def one_hold_per_order(apps, schema_editor):
    """Before the constraint: an order disputed by several tickets kept a hold
    per ticket. Keep the oldest, release the others (the account's held sum
    goes down by their amounts), and count every open hold's dispute in
    ``open_disputes`` as escrow-pending orders already did."""
    FundHold = apps.get_model("merchants", "FundHold")
    Order = apps.get_model("merchants", "Order")
    MerchantAccount = apps.get_model("merchants", "MerchantAccount")
    held = FundHold.objects.filter(status="held")
    for row in held.values("order_id").annotate(n=Count("id")):
        # each held hold stood for one open dispute on a released order
        Order.objects.filter(pk=row["order_id"], open_disputes__lt=row["n"]).update(open_disputes=row["n"])
    for row in held.values("order_id").annotate(n=Count("id")).filter(n__gt=1):
        holds = list(held.filter(order_id=row["order_id"]).order_by("placed_at", "id"))
        for extra in holds[1:]:
            extra.status = "released"
            extra.settled_at = extra.placed_at
            extra.save(update_fields=["status", "settled_at"])
            account = MerchantAccount.objects.get(merchant_id=extra.merchant_id)
            account.held_fen -= extra.amount_fen
            account.save(update_fields=["held_fen"])


class Migration(migrations.Migration):

    dependencies = [
        ("merchants", "0005_order_cancellation"),
    ]

    operations = [
        migrations.RunPython(one_hold_per_order, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="fundhold",
            constraint=models.UniqueConstraint(condition=models.Q(("status", "held")), fields=("order",),
                                               name="hold_one_active_per_order"),
        ),
    ]
