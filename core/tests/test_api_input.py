"""core.api.Input: fields built once per class and shared, with DRF's answers."""

from __future__ import annotations

import threading

import pytest
from rest_framework import serializers
from rest_framework.relations import PrimaryKeyRelatedField

from core.api import Input, IntegerField


def declared():
    return {
        "kind": serializers.CharField(max_length=16),
        "amount_fen": IntegerField(required=False, allow_null=True, min_value=1, max_value=10**6),
        "reason": serializers.CharField(max_length=20),
        "with_coupon": serializers.BooleanField(required=False, default=False),
        "tags": serializers.ListField(child=serializers.CharField(max_length=8), required=False, max_length=3),
        "filters": serializers.DictField(child=serializers.CharField(), required=False),
        "grade": serializers.ChoiceField(choices=["vip", "general"], required=False),
    }


Shared = type("Shared", (Input,), declared())
Plain = type("Plain", (serializers.Serializer,), declared())


CASES = [
    {"kind": "coupon", "reason": "延误"},
    {"kind": "refund", "amount_fen": "500", "reason": "破损", "with_coupon": True, "tags": ["a", "b"],
     "filters": {"status": "open"}, "grade": "vip"},
    {},
    {"kind": "x" * 17, "amount_fen": "²", "reason": "", "with_coupon": "maybe", "tags": ["toolongtag"] * 4,
     "filters": [1], "grade": "gold"},
    {"kind": None, "amount_fen": 0, "reason": "r" * 21, "tags": "notalist", "filters": {"a": None}},
    {"kind": "coupon", "reason": "ok", "amount_fen": None, "unknown": "ignored"},
    [],
    "text",
]


def outcome(serializer_class, data):
    s = serializer_class(data=data)
    valid = s.is_valid()
    return valid, (dict(s.validated_data) if valid else s.errors)


@pytest.mark.parametrize("data", CASES)
def test_an_input_answers_exactly_as_drf(data):
    assert outcome(Shared, data) == outcome(Plain, data)


def test_the_fields_are_built_once_per_class_and_keep_no_call():
    request_like = object()
    first = Shared(data={"kind": "coupon", "reason": "a"}, context={"request": request_like})
    second = Shared(data={"kind": "resend", "reason": "b"})
    assert first.fields is second.fields
    assert first.fields["kind"] is second.fields["kind"]
    # bound to an instance of the class made without data or context, not to a call
    root = first.fields["kind"].root
    assert type(root) is Shared and root is not first and root is not second
    assert root.context == {} and not hasattr(root, "initial_data")
    # a plain serializer still copies its fields per instance
    assert Plain().fields["kind"] is not Plain().fields["kind"]


def test_each_subclass_has_its_own_fields():
    class Wider(Shared):
        note = serializers.CharField(required=False)

    assert "note" in Wider().fields and "note" not in Shared().fields
    assert Wider().fields["kind"] is not Shared().fields["kind"]


def test_validate_methods_run_on_the_calls_own_instance():
    class Checked(Input):
        amount = IntegerField()

        def validate_amount(self, value):
            if value > self.initial_data.get("limit", 10):
                raise serializers.ValidationError("over the limit")
            return value

    assert outcome(Checked, {"amount": 5}) == (True, {"amount": 5})
    assert outcome(Checked, {"amount": 50})[0] is False
    assert outcome(Checked, {"amount": 50, "limit": 100}) == (True, {"amount": 50})


def test_calls_on_many_threads_keep_their_own_data_and_errors():
    results: dict[int, tuple] = {}
    start = threading.Barrier(8)

    def call(n: int) -> None:
        start.wait()
        for i in range(200):
            data = {"kind": f"k{n}", "reason": f"r{i}", "amount_fen": str(n * 1000 + i + 1)} if (n + i) % 2 else \
                {"kind": "", "reason": "r" * 30, "amount_fen": "-1"}
            got = outcome(Shared, data)
            if got != outcome(Plain, data):
                results[n] = (data, got)
                return
        results.setdefault(n, None)

    threads = [threading.Thread(target=call, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {n: None for n in range(8)}


@pytest.mark.parametrize("field, reason", [
    (serializers.HiddenField(default=serializers.CurrentUserDefault()), "HiddenField"),
    (serializers.CharField(default=serializers.CreateOnlyDefault("x")), "default asks for the context"),
    (PrimaryKeyRelatedField(read_only=True), "PrimaryKeyRelatedField"),
    (serializers.ListField(child=serializers.HiddenField(default=1)), "HiddenField"),
    (Plain(), "nested serializer that is not an Input"),
])
def test_a_field_that_reads_its_context_cannot_be_declared(field, reason):
    with pytest.raises(TypeError, match=reason):
        type("Refused", (Input,), {"field": field})


def test_a_nested_input_is_shared_too():
    class Line(Input):
        sku = serializers.CharField(max_length=4)

    class Order(Input):
        lines = Line(many=True)

    assert outcome(Order, {"lines": [{"sku": "A1"}, {"sku": "B2"}]}) == (
        True, {"lines": [{"sku": "A1"}, {"sku": "B2"}]})
    valid, errors = outcome(Order, {"lines": [{"sku": "A1"}, {"sku": "TOOLONG"}]})
    assert not valid and errors["lines"][1]["sku"][0].code == "max_length"


def test_an_input_is_never_partial():
    with pytest.raises(TypeError, match="cannot be partial"):
        Shared(data={}, partial=True)


def test_the_schema_gives_no_input_its_base_class_docstring():
    import inspect

    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    components = schema["components"]["schemas"]
    inputs = [name for name in components if name.endswith("InputRequest")]
    assert inputs, "the schema names its inputs …InputRequest"
    leaked = [name for name, body in components.items() if body.get("description") == inspect.cleandoc(Input.__doc__)]
    assert leaked == []
