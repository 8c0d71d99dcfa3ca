"""One code, one status: every DomainError code is declared by one class and
has its HTTP status in core.errors.STATUS_BY_CODE; no error class chooses a
status of its own."""

import importlib

from core.errors import STATUS_BY_CODE, DomainError

APPS = ["core", "accounts", "merchants", "tickets", "compensation", "risk", "incidents"]


def _all_error_classes() -> list[type]:
    for app in APPS:
        for module in (f"{app}.errors", f"{app}.chat_writer" if app == "tickets" else None):
            if module:
                try:
                    importlib.import_module(module)
                except ModuleNotFoundError:
                    pass
    found, todo = [], [DomainError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def test_every_code_is_declared_once_and_has_one_status():
    declared: dict[str, list[str]] = {}
    for cls in _all_error_classes():
        if "code" in cls.__dict__:
            declared.setdefault(cls.__dict__["code"], []).append(f"{cls.__module__}.{cls.__qualname__}")
        assert "status" not in cls.__dict__ or cls is DomainError, f"{cls.__qualname__} chooses its own status"
    twice = {code: owners for code, owners in declared.items() if len(owners) > 1}
    assert twice == {}
    assert sorted(set(declared) - set(STATUS_BY_CODE)) == []
    assert sorted(set(STATUS_BY_CODE) - set(declared)) == []  # no status for a code nobody raises


def test_the_table_answers_for_subclasses_too():
    from compensation.errors import AmountInvalid, TicketClosed
    from merchants.errors import AmountInvalid as OrderAmountInvalid
    from tickets.errors import TicketClosed as ConversationClosed

    assert AmountInvalid().status == OrderAmountInvalid().status == 422 and AmountInvalid().code == "amount_invalid"
    assert TicketClosed().status == ConversationClosed().status == 422
