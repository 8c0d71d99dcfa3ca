from celery import shared_task


@shared_task(name="merchants.tasks.auto_confirm")
def auto_confirm() -> int:
    from merchants.services import auto_confirm_orders

    return len(auto_confirm_orders())


@shared_task(name="merchants.tasks.credit_scores")
def credit_scores() -> int:
    from merchants.services import recompute_credit_scores

    return recompute_credit_scores()
