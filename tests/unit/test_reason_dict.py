"""A Reason as the API and the why records give it (`Reason.to_dict`): its stable code, its
message from the code's template, then its numbers, under the keys clients read."""

from __future__ import annotations

from cortex.scheduler.reasons import Code, Reason


def test_a_reason_dict_has_its_code_message_and_numbers() -> None:
    r = Reason(Code.NODE_DRAINING, node="n1", deadline="2030-01-01T00:00:00Z")
    assert r.to_dict() == {
        "code": "NodeDraining",
        "message": "its node n1 is being drained (deadline 2030-01-01T00:00:00Z)",
        "node": "n1",
        "deadline": "2030-01-01T00:00:00Z",
    }


def test_a_reason_whose_numbers_miss_a_template_field_still_says_something() -> None:
    # The template wants `node` and `deadline`; without them the message falls back to the
    # code and the numbers it has, never a KeyError.
    r = Reason(Code.NODE_DRAINING, node="n1")
    assert r.to_dict() == {
        "code": "NodeDraining",
        "message": "NodeDraining {'node': 'n1'}",
        "node": "n1",
    }
