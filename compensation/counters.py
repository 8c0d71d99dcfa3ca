"""The caps of self-service as counters taken by conditional updates.

No row is locked while a remedy runs its other statements: each counter is
taken by one statement that increments only while under its cap, and says
whether it did. The agent's quota and the buyer's counter are per person;
the day's budget, the one row every remedy on the platform touches, is spent
by the last statement before commit, so its lock lasts only that long.

Each statement is an ``INSERT … ON CONFLICT … DO UPDATE … WHERE … RETURNING``
(the row may not exist yet), which PostgreSQL and SQLite (3.35+) both run.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, datetime

from django.db import connection, transaction
from django.db.models import F

from accounts.models import LoginEvent
from compensation.models import AgentQuota, BlacklistEntry, BudgetDay, BuyerCounter, Policy
from compensation.rules import Caps
from core.locks import taking
from core import rows
from core.rows import Result, column, prepared_cursor, write
from core.rows import table as table_of


def _in_transaction() -> None:
    assert transaction.get_connection().in_atomic_block, "counters are taken inside the remedy's transaction"


def _q(name: str) -> str:
    return connection.ops.quote_name(name)


POLICY_CAPS = ("value_cap_fen", "coupon_fen", "coupon_max_fen", "coupon_days", "agent_monthly_quota", "buyer_daily_cap",
               "daily_budget_fen")


def caps_snapshot(*, agent_id: int, buyer_id: int | None, buyer_username: str, day: date, period: str,
                  now: datetime) -> Caps:
    """The policy in force and what is used of it, in one query (reading the
    caps never writes the policy's row: before anyone changed the policy its
    defaults apply). The buyer is blacklisted by account, or by the address or
    device of the buyer's latest login (subqueries of the same statement).

    Every remedy, and every panel that shows the caps, asks this; its SQL is
    written once per process from the models' names, because the ORM spent
    ten times longer building the statement than the database answering it."""
    ops = connection.ops
    params = {"agent": agent_id, "period": period, "buyer": buyer_id, "username": buyer_username,
              "day": ops.adapt_datefield_value(day), "now": ops.adapt_datetimefield_value(now),
              "account": BlacklistEntry.Kind.ACCOUNT.value, "ip": BlacklistEntry.Kind.IP.value,
              "device": BlacklistEntry.Kind.DEVICE.value}
    with prepared_cursor() as cursor:
        cursor.execute(_caps_sql(connection.vendor), params)
        row = dict(zip((*POLICY_CAPS, *_USED), cursor.fetchone()))
    if row["value_cap_fen"] is None:  # nobody changed the policy yet: its defaults
        defaults = Policy()
        row.update({name: getattr(defaults, name) for name in POLICY_CAPS})
    return Caps(
        value_cap_fen=row["value_cap_fen"], coupon_fen=row["coupon_fen"], coupon_max_fen=row["coupon_max_fen"],
        coupon_days=row["coupon_days"], agent_monthly_quota=row["agent_monthly_quota"],
        buyer_daily_cap=row["buyer_daily_cap"], daily_budget_fen=row["daily_budget_fen"],
        quota_used=row["quota_used"] or 0, buyer_count=row["buyer_count"] or 0, spent_fen=row["day_spent"] or 0,
        budget_fen=row["daily_budget_fen"] if row["day_budget"] is None else row["day_budget"],
        breaker_open=bool(row["day_breaker"]), blacklisted=bool(row["blacklisted"]),
    )


_USED = ("quota_used", "buyer_count", "day_spent", "day_budget", "day_breaker", "blacklisted")


@functools.cache
def _caps_sql(vendor: str) -> str:
    """``caps_snapshot``'s statement: the policy row (absent: NULLs) beside
    one subquery per counter and the blacklist's ``EXISTS``, named from the
    models. PostgreSQL keeps a login's address as ``inet``, read without its
    netmask (``HOST``) as the blacklist writes it; SQLite stores the text."""

    def counter(model, name: str, where: str) -> str:
        return f"(SELECT {column(model, name)} FROM {table_of(model)} WHERE {where} LIMIT 1)"

    ip = column(LoginEvent, "ip", "l")
    latest_login = (f"FROM {table_of(LoginEvent)} l WHERE {column(LoginEvent, 'user', 'l')} = %(buyer)s{{extra}} "
                    f"ORDER BY {column(LoginEvent, 'at', 'l')} DESC, {column(LoginEvent, 'id', 'l')} DESC LIMIT 1")
    latest_ip = f"SELECT {f'HOST({ip})' if vendor == 'postgresql' else ip} " + latest_login.format(extra="")
    latest_device = f"SELECT {column(LoginEvent, 'device', 'l')} " + latest_login.format(
        extra=f" AND {column(LoginEvent, 'device', 'l')} <> ''")
    kind, value = column(BlacklistEntry, "kind", "b"), column(BlacklistEntry, "value", "b")
    day = f"{column(BudgetDay, 'date')} = %(day)s"
    agent = f"{column(AgentQuota, 'agent')} = %(agent)s AND {column(AgentQuota, 'period')} = %(period)s"
    buyer = f"{column(BuyerCounter, 'buyer')} = %(buyer)s AND {column(BuyerCounter, 'date')} = %(day)s"
    used = [
        counter(AgentQuota, "used", agent), counter(BuyerCounter, "count", buyer),
        counter(BudgetDay, "spent_fen", day), counter(BudgetDay, "budget_fen", day),
        counter(BudgetDay, "breaker_open", day),
        f"EXISTS (SELECT 1 FROM {table_of(BlacklistEntry)} b WHERE {column(BlacklistEntry, 'expires_at', 'b')} > %(now)s "
        f"AND (({kind} = %(account)s AND {value} = %(username)s) OR ({kind} = %(ip)s AND {value} = ({latest_ip})) "
        f"OR ({kind} = %(device)s AND {value} = ({latest_device}))))",
    ]
    policy = ", ".join(column(Policy, name, "p") for name in POLICY_CAPS)
    return (f"SELECT {policy}, {', '.join(used)} FROM (SELECT 1 AS one) AS one "
            f"LEFT JOIN {table_of(Policy)} p ON {column(Policy, 'id', 'p')} = 1")


def take_quota(*, agent_id: int, period: str, limit: int) -> Result:
    """One self-service remedy of the agent's month, if fewer than ``limit``
    (the policy's quota now, not when the month began) are used: taken when
    the result's ``row`` is not None (inside ``core.rows.sent_together``,
    known once the statement has been sent)."""
    _in_transaction()
    if limit <= 0:
        return Result.nothing()
    taking("agent_quota")
    table = _q(AgentQuota._meta.db_table)
    return write(
        f"INSERT INTO {table} (agent_id, period, used) VALUES (%s, %s, 1) "
        f"ON CONFLICT (agent_id, period) DO UPDATE SET used = {table}.used + 1 "
        f"WHERE {table}.used < %s RETURNING used",
        [agent_id, period, limit],
    )


def take_buyer_slot(*, buyer_id: int, day: date, cap: int | None) -> Result:
    """One of the buyer's remedies today, if fewer than ``cap`` were given
    (``cap=None``: a supervisor's approval, counted but never refused): taken
    when the result's ``row`` is not None, as ``take_quota``."""
    _in_transaction()
    if cap is not None and cap <= 0:
        return Result.nothing()
    taking("buyer_counter")
    table = _q(BuyerCounter._meta.db_table)
    c = _q("count")
    condition = f" WHERE {table}.{c} < %s" if cap is not None else ""
    return write(
        f"INSERT INTO {table} (buyer_id, date, {c}) VALUES (%s, %s, 1) "
        f"ON CONFLICT (buyer_id, date) DO UPDATE SET {c} = {table}.{c} + 1{condition} RETURNING {c}",
        [buyer_id, connection.ops.adapt_datefield_value(day), *([cap] if cap is not None else [])],
    )


@dataclass(frozen=True)
class BudgetState:
    date: date
    spent_fen: int
    budget_fen: int
    breaker_open: bool
    breaker_opened: bool  # this spend opened it


def spend_budget(*, day: date, cost_fen: int, now: datetime, default_budget_fen: int,
                 approved: bool = False) -> BudgetState | None:
    """Spend ``cost_fen`` of the day's budget; the breaker opens when the spend
    reaches the budget. Self-service (``approved=False``) spends only while the
    breaker is closed and the budget covers the cost, else returns None and
    spends nothing. A supervisor's approval always spends."""
    _in_transaction()
    taking("budget_day")
    table = _q(BudgetDay._meta.db_table)
    cost = int(cost_fen)
    reaches = f"{table}.spent_fen + %(cost)s >= {table}.budget_fen"
    guard = "" if approved else f" WHERE NOT {table}.breaker_open AND {table}.spent_fen + %(cost)s <= {table}.budget_fen"
    # a first remedy of the day inserts the row: it may not pass the budget either
    if not approved and cost > default_budget_fen and not BudgetDay.objects.filter(date=day).exists():
        return None
    params = {"day": connection.ops.adapt_datefield_value(day), "default": default_budget_fen, "cost": cost,
              "now": connection.ops.adapt_datetimefield_value(now)}
    with rows.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (date, budget_fen, spent_fen, breaker_open, breaker_opened_at) "
            f"VALUES (%(day)s, %(default)s, %(cost)s, %(cost)s >= %(default)s, "
            f"CASE WHEN %(cost)s >= %(default)s THEN %(now)s END) "
            f"ON CONFLICT (date) DO UPDATE SET spent_fen = {table}.spent_fen + %(cost)s, "
            f"breaker_open = ({table}.breaker_open OR {reaches}), "
            f"breaker_opened_at = CASE WHEN NOT {table}.breaker_open AND {reaches} THEN %(now)s "
            f"ELSE {table}.breaker_opened_at END{guard} "
            f"RETURNING spent_fen, budget_fen, breaker_open",
            params,
        )
        row = cursor.fetchone()
    if row is None:
        return None
    spent, budget, breaker_open = row[0], row[1], bool(row[2])
    return BudgetState(date=day, spent_fen=spent, budget_fen=budget, breaker_open=breaker_open,
                       breaker_opened=breaker_open and spent - cost < budget)


def open_breaker_if_over(*, day: date, cost_fen: int, now: datetime, default_budget_fen: int) -> BudgetState | None:
    """A remedy that would pass the budget opens the breaker (it goes to
    approval itself); None when the breaker was open already or the cost fits."""
    _in_transaction()
    taking("budget_day")
    BudgetDay.objects.get_or_create(date=day, defaults={"budget_fen": default_budget_fen})
    changed = (BudgetDay.objects.filter(date=day, breaker_open=False, budget_fen__lt=F("spent_fen") + int(cost_fen))
               .update(breaker_open=True, breaker_opened_at=now))
    if not changed:
        return None
    row = BudgetDay.objects.get(date=day)
    return BudgetState(date=day, spent_fen=row.spent_fen, budget_fen=row.budget_fen, breaker_open=True,
                       breaker_opened=True)
