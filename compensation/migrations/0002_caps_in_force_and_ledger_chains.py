"""Caps in force at each request, a largest coupon, and the ledger as chains.

- ``AgentQuota.limit`` goes: the limit is the policy's quota at each request
  (a supervisor's change applies at once, to quotas already in use too).
- ``Policy.coupon_max_fen``: a coupon of another value than the policy's needs
  approval, and none is worth more than this.
- The ledger becomes ``LEDGER_CHAINS`` (16) hash chains: the old single head
  is chain 0 with every entry written so far; heads 1–15 start empty.
"""

from django.db import migrations, models


def heads_as_chains(apps, schema_editor):
    LedgerHead = apps.get_model("compensation", "LedgerHead")
    for head in LedgerHead.objects.order_by("pk"):
        head.chain = head.pk - 1
        head.save(update_fields=["chain"])
    existing = set(LedgerHead.objects.values_list("chain", flat=True))
    # chain c is head pk c + 1 (the old single head, made as pk 1, is chain 0)
    LedgerHead.objects.bulk_create(LedgerHead(pk=c + 1, chain=c) for c in range(16) if c not in existing)


class Migration(migrations.Migration):

    dependencies = [
        ("compensation", "0001_initial"),
    ]

    operations = [
        migrations.RemoveField(model_name="agentquota", name="limit"),
        migrations.AddField(
            model_name="policy",
            name="coupon_max_fen",
            field=models.BigIntegerField(default=10000, verbose_name="largest coupon (fen)"),
        ),
        migrations.AddConstraint(
            model_name="policy",
            constraint=models.CheckConstraint(condition=models.Q(("coupon_max_fen__gte", models.F("coupon_fen"))),
                                              name="policy_coupon_max_covers_coupon"),
        ),
        migrations.AddField(
            model_name="ledgerentry",
            name="chain",
            field=models.PositiveSmallIntegerField(default=0, verbose_name="chain"),
        ),
        migrations.AddIndex(
            model_name="ledgerentry",
            index=models.Index(fields=["chain", "id"], name="ledger_chain_order"),
        ),
        migrations.AddField(
            model_name="ledgerhead",
            name="chain",
            field=models.PositiveSmallIntegerField(null=True, verbose_name="chain"),
        ),
        migrations.RunPython(heads_as_chains, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="ledgerhead",
            name="chain",
            field=models.PositiveSmallIntegerField(unique=True, verbose_name="chain"),
        ),
        migrations.AlterModelOptions(
            name="ledgerhead",
            options={"ordering": ["chain"], "verbose_name": "ledger head", "verbose_name_plural": "ledger heads"},
        ),
    ]
