"""Tickets API: validate → service → serialize; no business rule here."""

from __future__ import annotations

from django.conf import settings
from django.http import FileResponse
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response

from accounts import roles
from accounts.logins import ip_and_device
from core.api import Input, IntegerField, JSONParser, filter_choice
from core.errors import NotFound, PermissionDenied
from core.parsing import int_or_none, parse_int
from tickets import events, rules, selectors, services, sla
from tickets.errors import FileTooLarge
from tickets.filters import parse_ticket_filters  # noqa: F401  (the console imported it from here)
from tickets.models import AgentProfile, Message, OvertimeRequest, Playbook, Queue, Rating, Ticket, TicketEvent


class TicketOutput(serializers.ModelSerializer):
    queue = serializers.SlugRelatedField(slug_field="code", read_only=True)
    queue_id = IntegerField(read_only=True, allow_null=True)
    buyer_id = IntegerField(read_only=True, allow_null=True)
    merchant_id = IntegerField(read_only=True, allow_null=True)
    order_id = IntegerField(read_only=True, allow_null=True)
    assignee_id = IntegerField(read_only=True, allow_null=True)
    merged_into_id = IntegerField(read_only=True, allow_null=True,
                                  help_text="the ticket this one was merged into (status `merged`)")
    overdue = serializers.SerializerMethodField()
    sla_paused = serializers.SerializerMethodField()
    tags = serializers.SerializerMethodField(help_text="the ticket's tags, normalised, sorted")

    class Meta:
        model = Ticket
        fields = [
            "id", "subject", "category", "party", "channel", "grade", "tier", "language", "status",
            "queue", "queue_id", "buyer_id", "merchant_id", "order_id", "assignee_id",
            "created_at", "updated_at", "due_at", "overdue", "sla_paused", "sla_remaining_s",
            "breached_at", "first_response_at", "resolved_at", "closed_at", "last_seq", "merged_into_id", "tags",
        ]

    def get_tags(self, ticket: Ticket) -> list[str]:
        return selectors.tag_names(ticket)

    def get_overdue(self, ticket: Ticket) -> bool:
        return ticket.is_overdue(self.context.get("now"))

    def get_sla_paused(self, ticket: Ticket) -> bool:
        return ticket.sla_paused_at is not None


_DATETIME = serializers.DateTimeField()
_TICKET_TIMES = ("created_at", "updated_at", "due_at", "breached_at", "first_response_at", "resolved_at", "closed_at")


def ticket_body(ticket: Ticket, *, now=None, user=None, detail: bool = False, tags: list[str] | None = None) -> dict:
    """``TicketOutput`` (``TicketDetailOutput`` with ``detail``) as a plain
    dict: a ModelSerializer builds its fields anew on every instantiation,
    about 5 ms of a create; the serializers stay for the schema, and a test
    holds this to their output. ``tags`` when the caller knows them (a new
    ticket has none), else a list row's (``selectors.with_tag_names``) or one query."""
    body = {
        "id": ticket.pk, "subject": ticket.subject, "category": ticket.category, "party": ticket.party,
        "channel": ticket.channel, "grade": ticket.grade, "tier": ticket.tier, "language": ticket.language,
        "status": ticket.status, "queue": ticket.queue.code if ticket.queue_id else None, "queue_id": ticket.queue_id,
        "buyer_id": ticket.buyer_id, "merchant_id": ticket.merchant_id, "order_id": ticket.order_id,
        "assignee_id": ticket.assignee_id,
    }
    for name in _TICKET_TIMES[:3]:
        value = getattr(ticket, name)
        body[name] = _DATETIME.to_representation(value) if value is not None else None
    body["overdue"] = ticket.is_overdue(now)
    body["sla_paused"] = ticket.sla_paused_at is not None
    body["sla_remaining_s"] = ticket.sla_remaining_s
    for name in _TICKET_TIMES[3:]:
        value = getattr(ticket, name)
        body[name] = _DATETIME.to_representation(value) if value is not None else None
    body["last_seq"] = ticket.last_seq
    body["merged_into_id"] = ticket.merged_into_id
    body["tags"] = selectors.tag_names(ticket) if tags is None else tags
    if detail:
        body["available_transitions"] = selectors.available_transitions(ticket=ticket, user=user)
        body["order_no"] = ticket.order.order_no if ticket.order_id else None
        body["tier_owner_role"] = rules.TIER_OWNER_ROLES[ticket.tier]
    return body


class TicketDetailOutput(TicketOutput):
    available_transitions = serializers.SerializerMethodField()
    order_no = serializers.SerializerMethodField()
    tier_owner_role = serializers.SerializerMethodField(
        help_text="The role that owns the ticket's tier (agent, supervisor as team lead, head); only that role "
                  "or above resolves or closes it.")

    class Meta(TicketOutput.Meta):
        fields = TicketOutput.Meta.fields + ["available_transitions", "order_no", "tier_owner_role"]

    def get_tier_owner_role(self, ticket: Ticket) -> str:
        return rules.TIER_OWNER_ROLES[ticket.tier]

    def get_available_transitions(self, ticket: Ticket) -> list[str]:
        return selectors.available_transitions(ticket=ticket, user=self.context["user"])

    def get_order_no(self, ticket: Ticket) -> str | None:
        return ticket.order.order_no if ticket.order_id else None


LIST_PARAMS = [
    OpenApiParameter("status", str, description="one status or a comma-separated list"),
    OpenApiParameter("queue", str, description="queue code or id"),
    OpenApiParameter("grade", str, enum=list(sla.GRADE_DEADLINES)),
    OpenApiParameter("assignee", str, description="agent id, `me` or `none`"),
    OpenApiParameter("overdue", bool),
    OpenApiParameter("merchant", int),
    OpenApiParameter("q", str, description="search: subject, message bodies, order no., buyer name or phone "
                                           "(every word must match), or a ticket id; the words of a message "
                                           "after the opening request are found within about 15 s"),
    OpenApiParameter("category", str, description="one category or a comma-separated list"),
    OpenApiParameter("channel", str, description="one channel or a comma-separated list"),
    OpenApiParameter("tier", int, description="1 agent, 2 team lead, 3 head, 4 all levels"),
    OpenApiParameter("tag", str, description="tickets carrying this tag"),
    OpenApiParameter("buyer", int, description="the buyer's user id"),
]


class TicketListApi(GenericAPIView):
    serializer_class = TicketOutput

    class InputSerializer(Input):
        class Meta:
            ref_name = "TicketListInput"

        category = serializers.CharField(max_length=64)
        subject = serializers.CharField(max_length=200)
        body = serializers.CharField(max_length=5000)
        order_id = IntegerField(required=False, allow_null=True, min_value=1, max_value=2**62)
        channel = serializers.CharField(required=False, max_length=16)
        buyer_id = IntegerField(required=False, allow_null=True, min_value=1, max_value=2**62)
        grade = serializers.CharField(required=False, max_length=16)
        language = serializers.CharField(required=False, max_length=8)

    @extend_schema(operation_id="tickets_list", parameters=LIST_PARAMS, responses=TicketOutput(many=True))
    def get(self, request):
        filters = parse_ticket_filters(request.query_params, user=request.user)
        # a list row shows only the queue's code: join just that (the console joins more)
        tickets = (
            selectors.ticket_list(user=request.user, filters=filters)
            .select_related(None)
            .select_related("queue")
            .order_by("-created_at", "-id")
        )
        page = selectors.with_tag_names(self.paginate_queryset(tickets))
        now = timezone.now()
        return self.get_paginated_response([ticket_body(ticket, now=now) for ticket in page])

    @extend_schema(operation_id="tickets_create", request=InputSerializer, responses={201: TicketDetailOutput})
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        # the service returns the saved instance; no refresh_from_db here: django-fsm-2's
        # FSMModelMixin toggles ``protected`` on the shared field, which races across threads
        ip, device = ip_and_device(request)
        ticket = services.open_ticket(actor=request.user, ip=ip, device=device, **data.validated_data)
        return Response(ticket_body(ticket, user=request.user, detail=True, tags=[]), status=status.HTTP_201_CREATED)


class TicketDetailApi(GenericAPIView):
    serializer_class = TicketDetailOutput

    @extend_schema(operation_id="tickets_retrieve", responses=TicketDetailOutput)
    def get(self, request, ticket_id: int):
        # the queue's code and the order's number are in the answer: joined, not two more queries
        ticket = selectors.get_ticket_for(user=request.user, ticket_id=ticket_id, related=("queue", "order"))
        return Response(ticket_body(ticket, user=request.user, detail=True))


class TicketTransitionApi(GenericAPIView):
    serializer_class = TicketDetailOutput

    class InputSerializer(Input):
        class Meta:
            ref_name = "TicketTransitionInput"

        assignee_id = IntegerField(required=False, allow_null=True, min_value=1, max_value=2**62)
        note = serializers.CharField(required=False, allow_blank=True, max_length=1000)
        # an agent past the shift taking a ticket by hand says so (else 409 shift_limit_reached)
        confirm_past_shift = serializers.BooleanField(required=False, default=False)

    @extend_schema(operation_id="tickets_transition", request=InputSerializer, responses=TicketDetailOutput)
    def post(self, request, ticket_id: int, name: str):
        data = self.InputSerializer(data=request.data or {})
        data.is_valid(raise_exception=True)
        ticket = services.transition_ticket(
            actor=request.user, ticket_id=ticket_id, name=name,
            assignee_id=data.validated_data.get("assignee_id"), note=data.validated_data.get("note", ""),
            confirm_past_shift=data.validated_data["confirm_past_shift"],
        )
        return Response(ticket_body(ticket, user=request.user, detail=True))


class TicketReportUpApi(GenericAPIView):
    """上报: escalate one tier with a note; the next tier hears of it."""

    serializer_class = TicketDetailOutput

    class InputSerializer(Input):
        class Meta:
            ref_name = "TicketReportUpInput"

        note = serializers.CharField(required=False, allow_blank=True, max_length=1000, default="")

    @extend_schema(operation_id="tickets_report_up", request=InputSerializer, responses=TicketDetailOutput)
    def post(self, request, ticket_id: int):
        data = self.InputSerializer(data=request.data or {})
        data.is_valid(raise_exception=True)
        ticket = services.report_up(actor=request.user, ticket_id=ticket_id, note=data.validated_data["note"])
        return Response(ticket_body(ticket, user=request.user, detail=True))


class TicketMergeApi(GenericAPIView):
    """Staff merge a duplicate into another open ticket of the same buyer: it
    ends `merged` (pointing at the target through `merged_into_id`), its
    messages follow in the target's conversation (new seqs, gap-free), both
    timelines record it, the buyer's chat follows, the order's hold stays one."""

    serializer_class = TicketDetailOutput

    class InputSerializer(Input):
        class Meta:
            ref_name = "TicketMergeInput"

        into_ticket_id = IntegerField(min_value=1)

    @extend_schema(
        operation_id="tickets_merge", request=InputSerializer,
        responses={200: TicketDetailOutput,
                   403: OpenApiResponse(description="not staff"),
                   404: OpenApiResponse(description="either ticket unknown or not visible"),
                   409: OpenApiResponse(description="merge_into_self, merge_target_closed (resolved, closed or "
                                                    "merged target), merge_buyer_mismatch, illegal_transition "
                                                    "(the source is not open)")},
    )
    def post(self, request, ticket_id: int):
        data = self.InputSerializer(data=request.data or {})
        data.is_valid(raise_exception=True)
        ticket = services.merge_tickets(actor=request.user, ticket_id=ticket_id,
                                        into_ticket_id=data.validated_data["into_ticket_id"])
        return Response(ticket_body(ticket, user=request.user, detail=True))


class TicketTagsApi(GenericAPIView):
    """Staff set a ticket's tags (the whole set: send the list it should carry).
    Tags are normalised (trimmed, lowercased, inner spaces as `-`), 1–32
    letters, digits, `-`, `_`, `.` or `:`, at most 10 per ticket; a change is
    written to the timeline (`tags_changed`, with `added` and `removed`)."""

    serializer_class = TicketDetailOutput

    class InputSerializer(Input):
        class Meta:
            ref_name = "TicketTagsInput"

        tags = serializers.ListField(child=serializers.CharField(allow_blank=True, trim_whitespace=False,
                                                                 max_length=64), max_length=40)

    @extend_schema(
        operation_id="tickets_tags_set", request=InputSerializer,
        responses={200: TicketDetailOutput,
                   400: OpenApiResponse(description="invalid_tag, invalid"),
                   403: OpenApiResponse(description="not staff"),
                   404: OpenApiResponse(description="unknown ticket"),
                   422: OpenApiResponse(description="too_many_tags (more than 10)")},
    )
    def post(self, request, ticket_id: int):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        ticket = services.set_ticket_tags(actor=request.user, ticket_id=ticket_id, tags=data.validated_data["tags"])
        return Response(ticket_body(ticket, user=request.user, detail=True))


class SavedViewOutput(serializers.Serializer):
    id = IntegerField()
    name = serializers.CharField()
    filters = serializers.DictField(child=serializers.CharField(),
                                    help_text="the list's query parameters this view applies")
    count = IntegerField(allow_null=True,
                         help_text="tickets `GET /api/v1/tickets/` lists with these filters, counted at most 10 s "
                                   "ago (one count serves everyone whose view asks the same); null when a filter "
                                   "no longer applies, e.g. a queue since removed")
    created_at = serializers.DateTimeField()


def _view_rows(user, views) -> list[dict]:
    views = list(views)
    counts = selectors.view_counts(user=user, views=views,
                                   to_filters=lambda stored: parse_ticket_filters(stored, user=user))
    return [{"id": v.pk, "name": v.name, "filters": v.filters, "count": counts.get(v.pk), "created_at": v.created_at}
            for v in views]


class SavedViewListApi(GenericAPIView):
    """An agent's saved queue filters, each with how many tickets it lists now
    (one count per view, at most 30 views per agent). Staff only; nobody sees
    another agent's views."""

    serializer_class = SavedViewOutput

    class InputSerializer(Input):
        class Meta:
            ref_name = "SavedViewInput"

        name = serializers.CharField(max_length=40)
        filters = serializers.DictField(required=False, default=dict,
                                        help_text="the list's filters: status, queue, grade, assignee, mine, "
                                                  "overdue, merchant, q, active, category, channel, tier, tag, buyer")

    @extend_schema(operation_id="views_list", responses=SavedViewOutput(many=True))
    def get(self, request):
        _require_staff(request.user)
        page = self.paginate_queryset(selectors.saved_views_of(user=request.user))
        return self.get_paginated_response(SavedViewOutput(_view_rows(request.user, page), many=True).data)

    @extend_schema(
        operation_id="views_create", request=InputSerializer,
        responses={201: SavedViewOutput,
                   400: OpenApiResponse(description="invalid (name), invalid_view_filters (unknown key or shape), "
                                                    "invalid (a filter's value, naming it)"),
                   403: OpenApiResponse(description="not staff"),
                   409: OpenApiResponse(description="view_name_taken"),
                   422: OpenApiResponse(description="too_many_views (30 per agent)")},
    )
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        view = services.create_saved_view(actor=request.user, name=data.validated_data["name"],
                                          filters=data.validated_data["filters"])
        return Response(SavedViewOutput(_view_rows(request.user, [view])[0]).data, status=status.HTTP_201_CREATED)


class SavedViewDetailApi(GenericAPIView):
    serializer_class = SavedViewOutput

    @extend_schema(operation_id="views_delete", responses={204: None, 403: OpenApiResponse(description="not staff"),
                                                          404: OpenApiResponse(description="not one of yours")})
    def delete(self, request, view_id: int):
        services.delete_saved_view(actor=request.user, view_id=view_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class InterceptOutput(serializers.Serializer):
    id = IntegerField()
    order_id = IntegerField()
    shipment_id = IntegerField()
    ticket_id = IntegerField(allow_null=True)
    resend_task_id = IntegerField()
    deadline_at = serializers.DateTimeField(source="resend_task.deadline_at")
    reason = serializers.CharField()
    shipment_status_before = serializers.CharField()
    requested_by_id = IntegerField()
    requested_at = serializers.DateTimeField()


class TicketInterceptResendApi(GenericAPIView):
    """After shipment: a carrier intercept request on the parcel and a compelled resend, together."""

    serializer_class = InterceptOutput

    class InputSerializer(Input):
        class Meta:
            ref_name = "TicketInterceptResendInput"

        reason = serializers.CharField(allow_blank=True, max_length=255)

    @extend_schema(operation_id="tickets_intercept_resend", request=InputSerializer, responses={201: InterceptOutput})
    def post(self, request, ticket_id: int):
        data = self.InputSerializer(data=request.data or {})
        data.is_valid(raise_exception=True)
        intercept = services.intercept_and_resend(actor=request.user, ticket_id=ticket_id,
                                                  reason=data.validated_data["reason"])
        return Response(InterceptOutput(intercept).data, status=status.HTTP_201_CREATED)


class TicketEventOutput(serializers.ModelSerializer):
    actor_id = IntegerField(read_only=True, allow_null=True)

    class Meta:
        model = TicketEvent
        fields = ["id", "kind", "actor_id", "data", "created_at"]


class TicketEventsApi(GenericAPIView):
    serializer_class = TicketEventOutput

    @extend_schema(operation_id="tickets_events", responses=TicketEventOutput(many=True))
    def get(self, request, ticket_id: int):
        # the audit timeline carries staff notes: staff only
        ticket = selectors.get_ticket_for(user=request.user, ticket_id=ticket_id)
        _require_staff(request.user)
        page = self.paginate_queryset(ticket.events.order_by("created_at", "id"))
        return self.get_paginated_response(TicketEventOutput(page, many=True).data)


class AttachmentOutput(serializers.Serializer):
    """A picture or PDF: its URLs are the scoped endpoints below (never the storage's)."""

    id = IntegerField()
    content_type = serializers.CharField()
    size_bytes = IntegerField()
    url = serializers.CharField()
    thumbnail_url = serializers.CharField(allow_null=True, help_text="images only; null for a PDF")

    def to_representation(self, attachment):
        return events.attachment_payload(attachment)


class MessageOutput(serializers.ModelSerializer):
    author_id = IntegerField(read_only=True, allow_null=True)
    author_name = serializers.SerializerMethodField()
    ticket_id = IntegerField(read_only=True)
    attachments = serializers.SerializerMethodField()

    class Meta:
        model = Message
        fields = ["id", "ticket_id", "seq", "author_id", "author_name", "author_role", "body", "internal",
                  "client_msg_id", "created_at", "attachments"]

    @extend_schema_field(AttachmentOutput(many=True))
    def get_attachments(self, message: Message) -> list[dict]:
        # prefetched by the selectors (a new message carries the ones it claimed)
        return [events.attachment_payload(a) for a in events.attachments_of(message)]

    def get_author_name(self, message: Message) -> str:
        return message.author.name if message.author_id else ""


class TicketMessagesApi(GenericAPIView):
    serializer_class = MessageOutput

    class InputSerializer(Input):
        class Meta:
            ref_name = "TicketMessagesInput"

        body = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="",
                                     help_text="may be empty when attachments go with it")
        internal = serializers.BooleanField(required=False, default=False)
        client_msg_id = serializers.CharField(required=False, max_length=64)
        attachment_ids = serializers.ListField(
            child=IntegerField(min_value=1, max_value=2**62), required=False, default=list, max_length=50,
            help_text="ids from POST /tickets/{id}/attachments/, uploaded by the caller to this ticket and not "
                      "yet on a message (at most 6); otherwise 422 attachment_unavailable and nothing is written")

    @extend_schema(
        operation_id="tickets_messages_list",
        parameters=[OpenApiParameter("after_seq", int, description="only messages with a larger seq")],
        responses=MessageOutput(many=True),
    )
    def get(self, request, ticket_id: int):
        ticket = selectors.get_ticket_for(user=request.user, ticket_id=ticket_id)
        messages = selectors.messages_visible_to(user=request.user, ticket=ticket)
        if after := request.query_params.get("after_seq"):
            messages = messages.filter(seq__gt=parse_int(after, field="after_seq", minimum=0))
        page = self.paginate_queryset(messages)
        return self.get_paginated_response(MessageOutput(page, many=True).data)

    @extend_schema(
        operation_id="tickets_messages_create", request=InputSerializer,
        responses={201: MessageOutput,
                   422: OpenApiResponse(description="attachment_unavailable, too_many_attachments, ticket_closed")},
    )
    def post(self, request, ticket_id: int):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        ip, device = ip_and_device(request)
        message = services.post_message(actor=request.user, ticket_id=ticket_id, ip=ip, device=device,
                                        **data.validated_data)
        return Response(MessageOutput(message).data, status=status.HTTP_201_CREATED)


class RatingOutput(serializers.ModelSerializer):
    ticket_id = IntegerField(read_only=True)

    class Meta:
        model = Rating
        fields = ["ticket_id", "score", "comment", "created_at"]


class TicketRatingApi(GenericAPIView):
    serializer_class = RatingOutput

    class InputSerializer(Input):
        class Meta:
            ref_name = "TicketRatingInput"

        score = IntegerField()
        comment = serializers.CharField(required=False, allow_blank=True, max_length=500)

    @extend_schema(operation_id="tickets_rate", request=InputSerializer, responses={201: RatingOutput})
    def post(self, request, ticket_id: int):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        rating = services.rate_ticket(actor=request.user, ticket_id=ticket_id, **data.validated_data)
        return Response(RatingOutput(rating).data, status=status.HTTP_201_CREATED)


def _require_staff(user) -> None:
    if not roles.is_agent(user):
        raise PermissionDenied("Staff only.")


class QuickReplyOutput(serializers.Serializer):
    id = IntegerField()
    shortcut = serializers.CharField()
    title = serializers.CharField()
    text = serializers.CharField()
    missing = serializers.ListField(child=serializers.CharField())


class TicketQuickRepliesApi(GenericAPIView):
    serializer_class = QuickReplyOutput
    pagination_class = None

    @extend_schema(operation_id="tickets_quick_replies", responses=QuickReplyOutput(many=True))
    def get(self, request, ticket_id: int):
        _require_staff(request.user)
        ticket = selectors.get_ticket_for(user=request.user, ticket_id=ticket_id)
        rows = []
        for reply in selectors.quick_replies_for(ticket=ticket):
            text, missing = services.render_quick_reply(reply=reply, ticket=ticket, agent=request.user)
            rows.append({"id": reply.pk, "shortcut": reply.shortcut, "title": reply.title, "text": text,
                         "missing": missing})
        return Response(QuickReplyOutput(rows, many=True).data)


class PlaybookOutput(serializers.ModelSerializer):
    created_by_id = IntegerField(read_only=True, allow_null=True)

    class Meta:
        model = Playbook
        fields = ["id", "title", "category", "body", "created_by_id", "created_at", "updated_at"]


class PlaybookListApi(GenericAPIView):
    serializer_class = PlaybookOutput

    class InputSerializer(Input):
        class Meta:
            ref_name = "PlaybookListInput"

        title = serializers.CharField(max_length=120)
        body = serializers.CharField(max_length=10000)
        category = serializers.CharField(required=False, allow_blank=True, max_length=32)

    @extend_schema(
        operation_id="playbooks_list",
        parameters=[OpenApiParameter("category", str), OpenApiParameter("q", str)],
        responses=PlaybookOutput(many=True),
    )
    def get(self, request):
        _require_staff(request.user)
        items = selectors.playbooks(
            category=request.query_params.get("category"), q=(request.query_params.get("q") or "")[:100]
        )
        page = self.paginate_queryset(items)
        return self.get_paginated_response(PlaybookOutput(page, many=True).data)

    @extend_schema(operation_id="playbooks_create", request=InputSerializer, responses={201: PlaybookOutput})
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        playbook = services.add_playbook(actor=request.user, **data.validated_data)
        return Response(PlaybookOutput(playbook).data, status=status.HTTP_201_CREATED)


class PlaybookDetailApi(GenericAPIView):
    serializer_class = PlaybookOutput

    class InputSerializer(Input):
        class Meta:
            ref_name = "PlaybookEditInput"

        title = serializers.CharField(max_length=120, required=False)
        body = serializers.CharField(max_length=10000, required=False)
        category = serializers.CharField(required=False, allow_blank=True, max_length=32)

    @extend_schema(operation_id="playbooks_get", responses=PlaybookOutput)
    def get(self, request, playbook_id: int):
        _require_staff(request.user)
        playbook = selectors.playbook_for_edit(playbook_id=playbook_id)
        if playbook is None:
            raise NotFound("No such playbook.")
        return Response(PlaybookOutput(playbook).data)

    @extend_schema(operation_id="playbooks_edit", request=InputSerializer, responses=PlaybookOutput)
    def patch(self, request, playbook_id: int):
        """The author or a team lead changes a playbook; fields left out keep their value."""
        _require_staff(request.user)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        current = selectors.playbook_for_edit(playbook_id=playbook_id)
        if current is None:
            raise NotFound("No such playbook.")
        fields = {"title": current.title, "body": current.body, "category": current.category,
                  **data.validated_data}
        playbook = services.edit_playbook(actor=request.user, playbook_id=playbook_id, **fields)
        return Response(PlaybookOutput(playbook).data)


class AgentMeOutput(serializers.Serializer):
    id = IntegerField()
    username = serializers.CharField()
    name = serializers.CharField()
    role = serializers.CharField()
    presence = serializers.CharField()
    capacity = IntegerField()
    skills = serializers.ListField(child=serializers.CharField())
    worked_s = IntegerField()
    shift_limit_s = IntegerField()
    shift_reached = serializers.BooleanField()


def agent_me_payload(user) -> dict:
    # a read writes nothing: before the first shift the profile is its defaults, unsaved
    profile = selectors.agent_profile_of(agent=user) or AgentProfile(user=user)
    shift = services.shift_status(agent=user)
    return {
        "id": user.pk, "username": user.username, "name": user.name, "role": roles.role_of(user),
        "presence": profile.presence, "capacity": profile.capacity,
        "skills": sorted(profile.skills.values_list("category", flat=True)) if profile.pk else [],
        "worked_s": shift.worked_s, "shift_limit_s": shift.limit_s, "shift_reached": shift.reached,
    }


class AgentMeApi(GenericAPIView):
    serializer_class = AgentMeOutput

    @extend_schema(operation_id="agents_me", responses=AgentMeOutput)
    def get(self, request):
        _require_staff(request.user)
        return Response(AgentMeOutput(agent_me_payload(request.user)).data)


class AgentPresenceApi(GenericAPIView):
    serializer_class = AgentMeOutput

    class InputSerializer(Input):
        class Meta:
            ref_name = "AgentPresenceInput"

        presence = serializers.CharField(max_length=16)

    @extend_schema(operation_id="agents_me_presence", request=InputSerializer, responses=AgentMeOutput)
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.set_presence(agent=request.user, presence=data.validated_data["presence"])
        return Response(AgentMeOutput(agent_me_payload(request.user)).data)


class OvertimeOutput(serializers.ModelSerializer):
    agent_id = IntegerField(read_only=True)
    decided_by_id = IntegerField(read_only=True, allow_null=True)

    class Meta:
        model = OvertimeRequest
        fields = ["id", "agent_id", "work_date", "minutes", "reason", "status", "decided_by_id", "decided_at",
                  "created_at"]


class OvertimeRequestApi(GenericAPIView):
    serializer_class = OvertimeOutput

    class InputSerializer(Input):
        class Meta:
            ref_name = "OvertimeRequestInput"

        minutes = IntegerField()
        reason = serializers.CharField(max_length=255)

    @extend_schema(operation_id="agents_me_overtime", request=InputSerializer, responses={201: OvertimeOutput})
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        overtime = services.request_overtime(agent=request.user, **data.validated_data)
        return Response(OvertimeOutput(overtime).data, status=status.HTTP_201_CREATED)


class OvertimeListApi(GenericAPIView):
    serializer_class = OvertimeOutput

    @extend_schema(
        operation_id="overtime_list", parameters=[OpenApiParameter("status", str)],
        responses=OvertimeOutput(many=True),
    )
    def get(self, request):
        _require_staff(request.user)
        requests = OvertimeRequest.objects.order_by("-created_at")
        if not roles.is_supervisor(request.user):
            requests = requests.filter(agent=request.user)
        requests = filter_choice(requests, request.query_params, "status", OvertimeRequest.Status.values)
        page = self.paginate_queryset(requests)
        return self.get_paginated_response(OvertimeOutput(page, many=True).data)


class OvertimeDecisionApi(GenericAPIView):
    serializer_class = OvertimeOutput
    grant = True

    @extend_schema(request=None, responses=OvertimeOutput)
    def post(self, request, request_id: int):
        overtime = services.decide_overtime(supervisor=request.user, request_id=request_id, grant=self.grant)
        return Response(OvertimeOutput(overtime).data)


class QueueOutput(serializers.ModelSerializer):
    class Meta:
        model = Queue
        fields = ["id", "code", "name", "description"]


class QueueListApi(GenericAPIView):
    serializer_class = QueueOutput

    @extend_schema(operation_id="queues_list", responses=QueueOutput(many=True))
    def get(self, request):
        _require_staff(request.user)
        page = self.paginate_queryset(Queue.objects.order_by("pk"))
        return self.get_paginated_response(QueueOutput(page, many=True).data)




class MerchantResponseApi(GenericAPIView):
    """The merchant accepts the claim (refund) or contests it with text and images."""

    serializer_class = TicketEventOutput
    parser_classes = [MultiPartParser, JSONParser]

    class InputSerializer(Input):
        class Meta:
            ref_name = "MerchantResponseInput"

        action = serializers.ChoiceField(choices=["accept_refund", "contest"])
        text = serializers.CharField(required=False, allow_blank=True, max_length=2000)
        images = serializers.ListField(child=serializers.FileField(), required=False, max_length=4)

    @extend_schema(operation_id="tickets_merchant_response", request={"multipart/form-data": InputSerializer},
                   responses={201: TicketEventOutput})
    def post(self, request, ticket_id: int):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        uploads = [
            services.Upload(name=f.name, content_type=f.content_type or "", data=f.read())
            for f in data.validated_data.get("images", [])
        ]
        event = services.respond_as_merchant(
            actor=request.user, ticket_id=ticket_id, action=data.validated_data["action"],
            text=data.validated_data.get("text", ""), images=uploads,
        )
        return Response(TicketEventOutput(event).data, status=status.HTTP_201_CREATED)


class EvidenceFileApi(GenericAPIView):
    """An evidence image, for staff and the merchant of the ticket only."""

    @extend_schema(operation_id="evidence_file", responses={(200, "image/*"): bytes})
    def get(self, request, evidence_id: int):
        evidence = selectors.get_evidence_for(user=request.user, evidence_id=evidence_id)
        return FileResponse(evidence.file.open("rb"), content_type=evidence.content_type)


MULTIPART_OVERHEAD = 64 * 1024  # the form's boundaries and headers around the file


class TicketAttachmentsApi(GenericAPIView):
    """Upload a picture (JPEG, PNG, WebP, GIF) or a PDF for a message to come:
    judged by its content, images re-encoded (EXIF dropped) with a thumbnail.
    The caller's next message on this ticket claims it with ``attachment_ids``;
    until then only the caller and staff can fetch it."""

    serializer_class = AttachmentOutput
    parser_classes = [MultiPartParser]

    class InputSerializer(Input):
        class Meta:
            ref_name = "TicketAttachmentsInput"

        file = serializers.FileField(required=False, allow_empty_file=True)

    @extend_schema(
        operation_id="tickets_attachments_create", request={"multipart/form-data": InputSerializer},
        responses={201: AttachmentOutput,
                   400: OpenApiResponse(description="file_required"),
                   404: OpenApiResponse(description="the ticket is unknown or not visible to the caller"),
                   413: OpenApiResponse(description="file_too_large (over ATTACHMENT_MAX_BYTES, 10 MB by default)"),
                   415: OpenApiResponse(description="unsupported_file_type: not a JPEG, PNG, WebP, GIF or PDF "
                                                    "by its content"),
                   422: OpenApiResponse(description="image_unreadable, image_too_large (too many pixels), "
                                                    "ticket_closed")},
    )
    def post(self, request, ticket_id: int):
        # refuse an oversized body before it is parsed (and spooled to disk)
        length = int_or_none(request.META.get("CONTENT_LENGTH"), minimum=0)
        if length is not None and length > settings.ATTACHMENT_MAX_BYTES + MULTIPART_OVERHEAD:
            raise FileTooLarge(f"The file is larger than {settings.ATTACHMENT_MAX_BYTES // (1024 * 1024)} MB.")
        upload = request.FILES.get("file")
        data = None
        if upload is not None:
            # never read more than the cap (and one byte to tell it was over)
            data = upload.read(settings.ATTACHMENT_MAX_BYTES + 1)
        ip, device = ip_and_device(request)
        attachment = services.upload_attachment(actor=request.user, ticket_id=ticket_id, data=data, ip=ip,
                                                device=device)
        return Response(AttachmentOutput(attachment).data, status=status.HTTP_201_CREATED)


def attachment_response(attachment, *, thumbnail: bool = False) -> FileResponse:
    """The stored bytes with the stored type, never sniffed by the browser nor
    run as a page: images inline, PDFs as a download, a sandboxing CSP."""
    stored = attachment.thumbnail if thumbnail else attachment.file
    content_type = "image/jpeg" if thumbnail else attachment.content_type
    name = stored.name.rsplit("/", 1)[-1]
    response = FileResponse(stored.open("rb"), content_type=content_type,
                            as_attachment=not content_type.startswith("image/"), filename=name)
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Cache-Control"] = "private, max-age=3600"
    return response


class AttachmentFileApi(GenericAPIView):
    """The attachment itself, for whoever may see its message (its uploader
    and staff before a message claims it); otherwise 404."""

    @extend_schema(operation_id="attachments_file", responses={(200, "image/*"): bytes, (200, "application/pdf"): bytes})
    def get(self, request, attachment_id: int):
        return attachment_response(selectors.get_attachment_for(user=request.user, attachment_id=attachment_id))


class AttachmentThumbnailApi(GenericAPIView):
    """An image attachment's thumbnail (JPEG, at most 320 px), for the same people; 404 for a PDF."""

    @extend_schema(operation_id="attachments_thumbnail", responses={(200, "image/jpeg"): bytes})
    def get(self, request, attachment_id: int):
        attachment = selectors.get_attachment_for(user=request.user, attachment_id=attachment_id)
        if not attachment.thumbnail:
            raise NotFound("This attachment has no thumbnail.")
        return attachment_response(attachment, thumbnail=True)
