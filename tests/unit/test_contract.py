"""The wire contract: every example round-trips; bad events and requests name the field."""

from __future__ import annotations

import orjson
import pytest

from streams.schemas import ImpressionEvent, InteractionEvent, InvalidEvent, ItemEvent, decode_event
from tests.contract import CONTRACT_PATHS, bad_variants, contract_examples

SCHEMAS = {"item": ItemEvent, "impression": ImpressionEvent, "interaction": InteractionEvent}


def test_docs_copy_of_the_contract_is_the_binding_one() -> None:
    docs, shared = CONTRACT_PATHS
    if not shared.exists():
        pytest.skip("../shared/contract.md is not beside this checkout")
    assert docs.read_text() == shared.read_text(), "docs/contract.md drifted from the contract"


@pytest.mark.parametrize("role", list(SCHEMAS))
def test_contract_example_round_trips(role: str) -> None:
    example = contract_examples()[role]
    event = decode_event(SCHEMAS[role], orjson.dumps(example))
    assert event.model_dump(exclude_unset=True) == example
    again = decode_event(SCHEMAS[role], orjson.dumps(event.model_dump(exclude_unset=True)))
    assert again == event


@pytest.mark.parametrize(
    ("role", "field", "what", "doc"),
    [(role, f, w, d) for role in SCHEMAS for (f, w, d) in bad_variants(role)],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_bad_event_is_rejected_naming_the_field(role: str, field: str, what: str,
                                                 doc: dict) -> None:
    with pytest.raises(InvalidEvent) as info:
        decode_event(SCHEMAS[role], orjson.dumps(doc))
    assert str(info.value).startswith(field), str(info.value)


@pytest.mark.parametrize("raw", [b"", b"[]", b"42", b"\xff\xfe", b'{"item_id": "a"', b"null"])
def test_non_objects_are_rejected_as_payload_errors(raw: bytes) -> None:
    with pytest.raises(InvalidEvent, match="^payload"):
        decode_event(ItemEvent, raw)


def test_rank_request_example_round_trips() -> None:
    from serving.schemas import RankRequest, parse_rank_request

    example = contract_examples()["rank_request"]
    req = parse_rank_request(orjson.dumps(example))
    assert req.model_dump(exclude_unset=True) == example
    assert RankRequest.model_validate(req.model_dump()) == req


def test_rank_response_example_round_trips() -> None:
    from serving.schemas import RankResponse

    example = contract_examples()["rank_response"]
    resp = RankResponse.model_validate(example)
    assert orjson.loads(orjson.dumps(resp.model_dump())) == example
