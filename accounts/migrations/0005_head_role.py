from django.db import migrations


class Migration(migrations.Migration):
    """The head of service's permission (issue #16 item 3: tiers are roles);
    ``ensure_role_groups`` makes the ``head`` group after migrate."""

    dependencies = [
        ("accounts", "0004_lockout_releases"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="user",
            options={
                "permissions": [
                    ("act_as_buyer", "Can open tickets and chats as a buyer"),
                    ("work_tickets", "Can work tickets as an agent"),
                    ("supervise", "Can supervise agents and tickets"),
                    ("head_service", "Can own grade-1 and all-levels tickets and incidents as the head of service"),
                    ("act_for_merchant", "Can act for a merchant in the merchant portal"),
                    ("integrate", "Can call the platform's integration endpoints (order system, carrier feeds)"),
                ],
                "verbose_name": "user",
                "verbose_name_plural": "users",
            },
        ),
    ]
