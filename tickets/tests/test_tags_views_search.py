"""Issue #13 item 4: tags, queue filters, saved views and search (services and API)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core.errors import InvalidInput, PermissionDenied
from merchants.tests.factories import OrderFactory
from tickets import search, services
from tickets.errors import InvalidTag, InvalidViewFilters, TicketNotFound, TooManyTags, TooManyViews, ViewNameTaken
from tickets.models import SavedView, Ticket, TicketEvent, TicketTag
from tickets.selectors import VIEWS_PER_AGENT, search_condition
from tickets.services.chat import ChatPost, store_chat_batch
from tickets.rules import viewer_of
from tickets.tags import normalize_tag, normalize_tags
from tickets.tests.factories import open_ticket, ticket_in_state


# --- search text -------------------------------------------------------------------------


def test_search_document_stores_cjk_runs_as_bigram_words():
    assert search.document("快递没动", "ORD-12", None, "１３８") == " 快递 递没 没动 ord-12 138 "
    assert search.document("") == ""
    assert search.document("单") == " 单 "


@pytest.mark.parametrize("text, term, hit", [
    ("快递三天没动了", "快递", True),
    ("快递三天没动了", "没动了", True),
    ("快递三天没动了", "快了", False),
    ("快递三天没动了", "递", True),
    ("iPhone快递破损", "iphone 破损", True),
    ("iPhone快递破损", "IPHONE", True),
    ("iPhone快递破损", "android", False),
    ("电话 13812345678", "1381234", True),
    ("Parcel lost near Hangzhou", "hangzhou parcel", True),
])
def test_patterns_match_as_substrings_of_the_document(text, term, hit):
    document = search.document(text)
    assert all(p in document for p in search.patterns(term)) is hit


def test_extend_keeps_the_cap():
    text = search.extend("", "a" * 10, limit=30)
    text = search.extend(text, "b" * 40, limit=30)
    assert len(text) == 30 and text.startswith(" aaaaaaaaaa bbb")


# --- tags --------------------------------------------------------------------------------


@pytest.mark.parametrize("raw, name", [
    ("VIP", "vip"), ("  Refund ", "refund"), ("ＶＩＰ", "vip"), ("慢 递", "慢-递"), ("退款", "退款"),
    ("a.b:c_d-e", "a.b:c_d-e"),
])
def test_tag_names_are_normalised(raw, name):
    assert normalize_tag(raw) == name


@pytest.mark.parametrize("raw", ["", "   ", "x" * 33, "-vip", "vip!", "a/b", "😀", 7, None])
def test_bad_tag_names_are_refused(raw):
    with pytest.raises(InvalidTag):
        normalize_tag(raw)


def test_tag_lists_drop_duplicates_and_are_capped():
    assert normalize_tags(["VIP", "vip", " Vip "]) == ["vip"]
    with pytest.raises(TooManyTags):
        normalize_tags([f"t{i}" for i in range(11)])
    with pytest.raises(InvalidTag):
        normalize_tags("vip")


@pytest.mark.django_db
def test_set_tags_adds_removes_and_records_the_change(agent, buyer, order):
    ticket = open_ticket(buyer=buyer, order=order)
    services.set_ticket_tags(actor=agent, ticket_id=ticket.pk, tags=["VIP", "slow courier"])
    assert set(TicketTag.objects.filter(ticket=ticket).values_list("name", flat=True)) == {"vip", "slow-courier"}
    services.set_ticket_tags(actor=agent, ticket_id=ticket.pk, tags=["vip", "refund"])
    assert set(TicketTag.objects.filter(ticket=ticket).values_list("name", flat=True)) == {"vip", "refund"}
    events = list(TicketEvent.objects.filter(ticket=ticket, kind="tags_changed").order_by("id"))
    assert [e.data["added"] for e in events] == [["slow-courier", "vip"], ["refund"]]
    assert events[1].data["removed"] == ["slow-courier"] and events[1].actor == agent
    # the same set again changes nothing and records nothing
    services.set_ticket_tags(actor=agent, ticket_id=ticket.pk, tags=["refund", "VIP"])
    assert TicketEvent.objects.filter(ticket=ticket, kind="tags_changed").count() == 2


@pytest.mark.django_db
def test_only_staff_tag(buyer, merchant_user, order):
    ticket = open_ticket(buyer=buyer, order=order)
    for user in (buyer, merchant_user):
        with pytest.raises(PermissionDenied):
            services.set_ticket_tags(actor=user, ticket_id=ticket.pk, tags=["vip"])
    assert not TicketTag.objects.exists()


# --- search text is kept by every write path ---------------------------------------------


def _found(term: str) -> list[int]:
    return sorted(Ticket.objects.filter(search_condition(term)).values_list("pk", flat=True))


@pytest.mark.django_db
def test_search_text_follows_messages_with_the_fold_but_not_internal_notes(agent, buyer, order):
    ticket = ticket_in_state("assigned", buyer=buyer, agent=agent, order=order)
    own = Ticket.objects.get(pk=ticket.pk).search_text
    assert order.order_no.lower() in own and buyer.username in own and search.document("请帮我查一下物流") in own
    services.post_message(actor=agent, ticket_id=ticket.pk, body="已联系顺丰加急处理")
    services.post_message(actor=agent, ticket_id=ticket.pk, body="内部备注 secretword", internal=True)
    # a message leaves the ticket's indexed text alone: its words come with the fold
    assert Ticket.objects.get(pk=ticket.pk).search_text == own and _found("顺丰") == []
    assert services.fold_search_text() == 1
    stored = Ticket.objects.get(pk=ticket.pk)
    assert " 顺丰 " in stored.search_text and "secretword" not in stored.search_text
    assert stored.searched_seq == stored.last_seq
    # notices ("assigned") are not searchable; the opening request is there once
    assert stored.search_text.count(search.document("请帮我查一下物流").strip()) == 1
    assert _found("顺丰") == [ticket.pk] and _found("secretword") == []
    assert services.fold_search_text() == 0  # nothing new: nothing written


@pytest.mark.django_db(transaction=True)
def test_chat_batch_leaves_the_search_text_to_the_fold(agent, buyer, order):
    ticket = ticket_in_state("assigned", buyer=buyer, agent=agent, order=order)
    own = Ticket.objects.get(pk=ticket.pk).search_text
    viewer = viewer_of(buyer)
    store_chat_batch(posts=[ChatPost(viewer=viewer, ticket_id=ticket.pk, body="包裹外箱压坏了", client_msg_id=None),
                            ChatPost(viewer=viewer, ticket_id=ticket.pk, body="photo attached", client_msg_id="c1")],
                     reads=[])
    assert Ticket.objects.get(pk=ticket.pk).search_text == own
    services.fold_search_text()
    text = Ticket.objects.get(pk=ticket.pk).search_text
    assert text.startswith(own.rstrip()) and text.endswith(" 包裹 裹外 外箱 箱压 压坏 坏了 photo attached ")
    assert _found("外箱压坏") == [ticket.pk] and _found("photo") == [ticket.pk]


@pytest.mark.django_db
def test_the_fold_looks_back_to_its_last_run_and_keeps_the_cap(agent, buyer, order, monkeypatch):
    from datetime import timedelta

    from django.utils import timezone

    from tickets.models import Message, SearchFold
    from tickets.services import conversation

    old = ticket_in_state("assigned", buyer=buyer, agent=agent, order=order)
    services.post_message(actor=buyer, ticket_id=old.pk, body="很久以前 walrus")
    services.fold_search_text()
    # a message stamped before the last fold began, less the slack, is not looked for again
    # (a merge's copies keep their times: the merge folds its target itself, below)
    services.post_message(actor=buyer, ticket_id=old.pk, body="晚到的 narwhal")
    Message.objects.filter(ticket=old).update(created_at=timezone.now() - conversation.FOLD_SLACK - timedelta(minutes=5))
    assert services.fold_search_text() == 0 and _found("narwhal") == []
    # an outage of the beat: the next fold looks back to where the last one began
    SearchFold.objects.update(through=timezone.now() - timedelta(hours=3))
    assert services.fold_search_text() == 1 and _found("narwhal") == [old.pk]
    # the text keeps its cap, the ticket's own part first
    monkeypatch.setitem(search.extend.__kwdefaults__, "limit", 200)
    services.post_message(actor=buyer, ticket_id=old.pk, body="x" * 500)
    services.fold_search_text()
    assert len(Ticket.objects.get(pk=old.pk).search_text) == 200


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_folds_racing_messages_lose_no_word_and_repeat_none(agent, buyer, order):
    from tests.concurrency import race, requires_postgres

    requires_postgres()
    ticket = ticket_in_state("assigned", buyer=buyer, agent=agent, order=order)
    words = [f"word{i:02d}" for i in range(12)]

    def work(i: int):
        if i % 3 == 0:
            return services.fold_search_text()
        return services.post_message(actor=buyer if i % 2 else agent, ticket_id=ticket.pk, body=words[i])

    _, errors = race(work, len(words))
    assert errors == []
    services.fold_search_text()
    stored = Ticket.objects.get(pk=ticket.pk)
    assert [w for w in words if f" {w} " in stored.search_text] == [w for i, w in enumerate(words) if i % 3]
    assert all(stored.search_text.count(f" {w} ") == 1 for i, w in enumerate(words) if i % 3)
    assert stored.searched_seq == stored.last_seq


@pytest.mark.django_db
def test_merge_brings_the_source_conversation_into_the_target_search(agent, buyer, order):
    target = open_ticket(buyer=buyer, order=order, body="第一次反映")
    source = open_ticket(buyer=buyer, order=order, body="重复的投诉 zebra")
    services.post_message(actor=agent, ticket_id=source.pk, body="内部 giraffe", internal=True)
    services.merge_tickets(actor=agent, ticket_id=source.pk, into_ticket_id=target.pk)
    # at once: the copies keep their original times, which the periodic fold does not look back to
    stored = Ticket.objects.get(pk=target.pk)
    assert "zebra" in stored.search_text and "giraffe" not in stored.search_text
    assert stored.searched_seq == stored.last_seq


# --- API: tags ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_tags_endpoint(api, agent, buyer, other_buyer, order, merchant_user):
    ticket = open_ticket(buyer=buyer, order=order)
    path = f"/api/v1/tickets/{ticket.pk}/tags/"
    response = api(agent).post(path, {"tags": ["VIP", "退款"]}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["tags"] == ["vip", "退款"] and response.json()["id"] == ticket.pk
    assert api(agent).get(f"/api/v1/tickets/{ticket.pk}/").json()["tags"] == ["vip", "退款"]
    assert api(buyer).get(f"/api/v1/tickets/{ticket.pk}/").json()["tags"] == ["vip", "退款"]
    for body, status, code in [
        ({"tags": ["bad tag!"]}, 400, "invalid_tag"),
        ({"tags": [f"t{i}" for i in range(11)]}, 422, "too_many_tags"),
        ({"tags": "vip"}, 400, "invalid"),
        ({}, 400, "invalid"),
    ]:
        response = api(agent).post(path, body, format="json")
        assert (response.status_code, response.json()["code"]) == (status, code), body
    assert api(buyer).post(path, {"tags": ["x"]}, format="json").status_code == 403
    assert api(other_buyer).post(path, {"tags": ["x"]}, format="json").status_code == 403
    assert api(merchant_user).post(path, {"tags": ["x"]}, format="json").status_code == 403
    assert api(agent).post("/api/v1/tickets/999999/tags/", {"tags": ["x"]}, format="json").status_code == 404
    assert api(None).post(path, {"tags": ["x"]}, format="json").status_code == 401


# --- API: filters ------------------------------------------------------------------------


@pytest.mark.django_db
def test_new_list_filters_each_match_one_and_not_the_other(api, agent, buyer, other_buyer, order, other_order):
    chat = open_ticket(buyer=buyer, order=order, category="coupon_failure", channel="chat")
    web = open_ticket(buyer=other_buyer, order=other_order, category="not_received", channel="web")
    Ticket.objects.filter(pk=web.pk).update(tier=2)
    services.set_ticket_tags(actor=agent, ticket_id=chat.pk, tags=["vip"])

    def ids(query):
        response = api(agent).get(f"/api/v1/tickets/?{query}")
        assert response.status_code == 200, response.json()
        return {row["id"] for row in response.json()["results"]}

    assert ids("category=coupon_failure") == {chat.pk}
    assert ids("category=coupon_failure,not_received") == {chat.pk, web.pk}
    assert ids("channel=web") == {web.pk}
    assert ids("tier=2") == {web.pk}
    assert ids("tier=1") == {chat.pk}
    assert ids("tag=VIP") == {chat.pk}
    assert ids("tag=other") == set()
    assert ids(f"buyer={other_buyer.pk}") == {web.pk}
    # scoping holds whatever the filters: a buyer asking for another buyer's tickets gets none
    response = api(buyer).get(f"/api/v1/tickets/?buyer={other_buyer.pk}")
    assert response.status_code == 200 and response.json()["count"] == 0
    assert {r["id"] for r in api(buyer).get("/api/v1/tickets/?tag=vip").json()["results"]} == {chat.pk}


@pytest.mark.django_db
@pytest.mark.parametrize("query", [
    "category=nope", "channel=fax", "tier=0", "tier=5", "tier=x", "tier=²", "tag=bad!tag", "tag=" + "x" * 40,
    "buyer=abc", "buyer=0", "buyer=99999999999999999999",
])
def test_bad_new_filters_are_400(api, agent, query):
    response = api(agent).get(f"/api/v1/tickets/?{query}")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"


# --- API: search -------------------------------------------------------------------------


@pytest.mark.django_db
def test_search_finds_by_subject_body_order_name_and_phone(api, agent, buyer, other_buyer, order, other_order):
    buyer.phone = "13812345678"
    buyer.save(update_fields=["phone"])
    mine = open_ticket(buyer=buyer, order=order, subject="快递三天没动了", body="请帮我查一下物流")
    services.transition_ticket(actor=agent, ticket_id=mine.pk, name="assign")
    services.post_message(actor=agent, ticket_id=mine.pk, body="已经联系仓库 warehouse 加急")
    theirs = open_ticket(buyer=other_buyer, order=other_order, subject="优惠券无法使用", body="coupon failed")
    services.fold_search_text()  # the beat's, every 15 s: what was said after the opening request

    def ids(user, term):
        response = api(user).get("/api/v1/tickets/", {"q": term})
        assert response.status_code == 200, response.json()
        return {row["id"] for row in response.json()["results"]}

    assert ids(agent, "快递") == {mine.pk}
    assert ids(agent, "优惠券") == {theirs.pk}
    assert ids(agent, "仓库") == {mine.pk}  # a message body
    assert ids(agent, "WAREHOUSE") == {mine.pk}
    assert ids(agent, order.order_no) == {mine.pk}
    assert ids(agent, other_order.order_no.lower()) == {theirs.pk}
    assert ids(agent, "林晓雨") == {mine.pk}  # the buyer's display name
    assert ids(agent, "buyer_b") == {theirs.pk}  # username
    assert ids(agent, "13812345678") == {mine.pk}
    assert ids(agent, "1381234") == {mine.pk}
    assert ids(agent, "coupon") == {theirs.pk}
    assert ids(agent, "快递 coupon") == set()
    assert ids(agent, str(theirs.pk)) == {theirs.pk}  # a short number is a ticket id
    assert ids(agent, "%") == set() and ids(agent, "x_y") == set()  # LIKE wildcards are escaped
    # scoping: a buyer's search never reaches another buyer's tickets
    assert ids(buyer, "优惠券") == set()
    assert ids(buyer, "快递") == {mine.pk}


@pytest.mark.django_db
@pytest.mark.postgres
def test_search_uses_the_trigram_index_on_postgresql(agent):
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only")
    from tickets.filters import parse_ticket_filters
    from tickets.selectors import ticket_list

    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_indexes WHERE indexname = 'ticket_search_trgm'")
        assert cursor.fetchone() is not None
        # with statistics from earlier tests the planner may walk an ordering index and filter;
        # with plain scans off, the LIKE can only be answered by a bitmap scan of an index that
        # supports it: the trigram one
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_indexscan = off")
    queryset = ticket_list(user=agent, filters=parse_ticket_filters({"q": "快递"}, user=agent))
    assert "ticket_search_trgm" in queryset.explain()


# --- saved views -------------------------------------------------------------------------


@pytest.mark.django_db
def test_saved_view_validation(agent, buyer):
    view = services.create_saved_view(actor=agent, name="  VIP   overdue ", filters={"tag": "VIP", "overdue": True,
                                                                                       "tier": 2, "q": ""})
    assert view.name == "VIP overdue" and view.filters == {"overdue": "true", "tier": "2", "tag": "VIP"}
    with pytest.raises(ViewNameTaken):
        services.create_saved_view(actor=agent, name="VIP overdue", filters={})
    with pytest.raises(InvalidViewFilters):
        services.create_saved_view(actor=agent, name="x", filters={"colour": "red"})
    with pytest.raises(InvalidViewFilters):
        services.create_saved_view(actor=agent, name="x", filters=["status", "open"])
    with pytest.raises(InvalidViewFilters):
        services.create_saved_view(actor=agent, name="x", filters={"status": {"a": 1}})
    with pytest.raises(InvalidInput):
        services.create_saved_view(actor=agent, name="x", filters={"status": "flying"})
    with pytest.raises(InvalidInput):
        services.create_saved_view(actor=agent, name="", filters={})
    with pytest.raises(InvalidInput):
        services.create_saved_view(actor=agent, name="n" * 41, filters={})
    with pytest.raises(PermissionDenied):
        services.create_saved_view(actor=buyer, name="mine", filters={})


@pytest.mark.django_db
def test_saved_views_are_capped_per_agent(agent, other_agent):
    SavedView.objects.bulk_create([SavedView(owner=agent, name=f"v{i}") for i in range(VIEWS_PER_AGENT)])
    with pytest.raises(TooManyViews):
        services.create_saved_view(actor=agent, name="one more", filters={})
    services.create_saved_view(actor=other_agent, name="v1", filters={})  # names are per agent


@pytest.mark.django_db
def test_views_endpoint(api, agent, other_agent, buyer, order, merchant_user):
    vip = open_ticket(buyer=buyer, order=order)
    open_ticket(buyer=buyer, order=order, channel="chat")
    services.set_ticket_tags(actor=agent, ticket_id=vip.pk, tags=["vip"])
    response = api(agent).post("/api/v1/views/", {"name": "VIP", "filters": {"tag": "vip"}}, format="json")
    assert response.status_code == 201, response.json()
    created = response.json()
    assert created["name"] == "VIP" and created["filters"] == {"tag": "vip"} and created["count"] == 1
    api(agent).post("/api/v1/views/", {"name": "Chats", "filters": {"channel": "chat"}}, format="json")
    body = api(agent).get("/api/v1/views/").json()
    assert [(v["name"], v["count"]) for v in body["results"]] == [("Chats", 1), ("VIP", 1)]
    # another agent sees none of them and cannot delete them
    assert api(other_agent).get("/api/v1/views/").json()["count"] == 0
    assert api(other_agent).delete(f"/api/v1/views/{created['id']}/").status_code == 404
    # bad input
    for payload, status, code in [
        ({"name": "VIP", "filters": {}}, 409, "view_name_taken"),
        ({"name": "x", "filters": {"colour": "red"}}, 400, "invalid_view_filters"),
        ({"name": "x", "filters": {"tier": "9"}}, 400, "invalid"),
        ({"name": "x", "filters": "tag=vip"}, 400, "invalid"),
        ({"filters": {}}, 400, "invalid"),
    ]:
        response = api(agent).post("/api/v1/views/", payload, format="json")
        assert (response.status_code, response.json()["code"]) == (status, code), payload
    # staff only
    for user in (buyer, merchant_user):
        assert api(user).get("/api/v1/views/").status_code == 403
        assert api(user).post("/api/v1/views/", {"name": "x"}, format="json").status_code == 403
        assert api(user).delete(f"/api/v1/views/{created['id']}/").status_code == 403
    assert api(agent).delete(f"/api/v1/views/{created['id']}/").status_code == 204
    assert [v["name"] for v in api(agent).get("/api/v1/views/").json()["results"]] == ["Chats"]
    assert api(agent).delete("/api/v1/views/abc/").status_code == 404


@pytest.mark.django_db
def test_delete_saved_view_service_scopes_to_the_owner(agent, other_agent):
    view = services.create_saved_view(actor=agent, name="mine", filters={})
    with pytest.raises(Exception) as raised:
        services.delete_saved_view(actor=other_agent, view_id=view.pk)
    assert raised.value.code == "not_found"
    assert SavedView.objects.filter(pk=view.pk).exists()
    with pytest.raises(TicketNotFound):
        services.set_ticket_tags(actor=agent, ticket_id=10**9, tags=[])


# --- query counts ------------------------------------------------------------------------


def _queries(client, path) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(path)
    assert response.status_code == 200
    return len(ctx.captured_queries)


@pytest.mark.django_db
def test_list_with_tags_costs_the_same_for_10_and_100_rows(api, agent, django_assert_max_num_queries):
    def make(n):
        for i in range(n):
            order = OrderFactory()
            ticket = open_ticket(buyer=order.buyer, order=order)
            TicketTag.objects.bulk_create([TicketTag(ticket=ticket, name=f"t{i % 3}"), TicketTag(ticket=ticket, name="x")])

    client = api(agent)
    make(10)
    at_10 = _queries(client, "/api/v1/tickets/?page_size=200&q=快递")
    make(90)
    with django_assert_max_num_queries(at_10):
        response = client.get("/api/v1/tickets/?page_size=200&q=快递")
    assert response.json()["count"] == 100
    expected: dict[int, list[str]] = {}
    for ticket_id, name in TicketTag.objects.order_by("name").values_list("ticket_id", "name"):
        expected.setdefault(ticket_id, []).append(name)
    assert {row["id"]: row["tags"] for row in response.json()["results"]} == expected  # each row its own, sorted


@pytest.mark.django_db
def test_views_list_costs_one_count_per_view(api, agent, buyer, order, django_assert_max_num_queries):
    open_ticket(buyer=buyer, order=order)
    client = api(agent)
    services.create_saved_view(actor=agent, name="a", filters={"status": "open"})
    at_1 = _queries(client, "/api/v1/views/")
    for i in range(9):
        services.create_saved_view(actor=agent, name=f"v{i}", filters={"q": "快递", "tier": "1"})
    with django_assert_max_num_queries(at_1 + 9):
        body = client.get("/api/v1/views/").json()
    assert body["count"] == 10 and all(v["count"] == 1 for v in body["results"])


@pytest.mark.django_db
def test_agents_whose_views_ask_the_same_share_one_count_and_mine_is_each_one_s(
        api, agent, other_agent, buyer, order, other_buyer, other_order):
    """Every console polls its views' counts: the same filters seen by the
    same sight are counted once for all (for ``VIEW_COUNT_TTL_S``)."""
    taken = open_ticket(buyer=buyer, order=order)
    services.transition_ticket(actor=agent, ticket_id=taken.pk, name="assign")
    open_ticket(buyer=other_buyer, order=other_order)
    for who in (agent, other_agent):
        services.create_saved_view(actor=who, name="open", filters={"status": "open"})
        services.create_saved_view(actor=who, name="mine", filters={"mine": "true"})

    def poll(who) -> tuple[dict, int]:
        with CaptureQueriesContext(connection) as ctx:
            body = api(who).get("/api/v1/views/").json()
        counted = [q for q in ctx.captured_queries if "COUNT(" in q["sql"] and '"tickets_ticket"' in q["sql"]]
        return {view["name"]: view["count"] for view in body["results"]}, len(counted)

    assert poll(agent) == ({"open": 1, "mine": 1}, 2)
    # the other agent's "open" is the first agent's; their "mine" is their own
    assert poll(other_agent) == ({"open": 1, "mine": 0}, 1)
    assert poll(agent) == ({"open": 1, "mine": 1}, 0)


@pytest.mark.django_db
def test_a_view_whose_queue_went_away_counts_null(api, agent):
    from tickets.models import Queue

    queue = Queue.objects.create(code="temp", name="Temp")
    services.create_saved_view(actor=agent, name="temp", filters={"queue": "temp"})
    queue.delete()
    body = api(agent).get("/api/v1/views/").json()
    assert body["results"][0]["count"] is None



@pytest.mark.django_db
def test_the_migration_fills_search_text_of_existing_tickets(agent, buyer, order):
    import importlib

    from django.apps import apps

    migration = importlib.import_module("tickets.migrations.0009_tags_views_search")
    ticket = ticket_in_state("assigned", buyer=buyer, agent=agent, order=order, subject="旧工单")
    services.post_message(actor=agent, ticket_id=ticket.pk, body="备注 hidden", internal=True)
    expected = Ticket.objects.get(pk=ticket.pk).search_text
    Ticket.objects.update(search_text="")
    migration.fill_search_text(apps, None)
    text = Ticket.objects.get(pk=ticket.pk).search_text
    assert text == expected and " 旧工 工单 " in text and "hidden" not in text
