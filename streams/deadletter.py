"""Dead-letter records: a rejected record, where it came from, and why.

>>> import orjson
>>> rec = orjson.loads(dead_letter_value("shop.items", 0, 7, "price: not a number", b'{"x"'))
>>> rec["topic"], rec["offset"], rec["error"], rec["payload"]
('shop.items', 7, 'price: not a number', '{"x"')
>>> orjson.loads(dead_letter_value("t", 0, 1, "payload: not UTF-8", b"\\xff"))["payload"]
'/w=='
"""

from __future__ import annotations

import base64

import orjson

__all__ = ["dead_letter_value"]


#: Payloads longer than this are cut in the dead letter (the record must fit the topic).
MAX_PAYLOAD_BYTES = 512 * 1024


def dead_letter_value(topic: str, partition: int, offset: int, error: str,
                      payload: bytes | None) -> bytes:
    """The JSON value of a dead-letter record (contract: topic, partition, offset, error,
    payload as text, or base64 with ``payload_encoding`` when it is not UTF-8). A payload
    over :data:`MAX_PAYLOAD_BYTES` is cut, with ``payload_truncated`` and ``payload_size``;
    the original stays at its topic, partition and offset."""
    record: dict[str, object] = {"topic": topic, "partition": partition, "offset": offset,
                                 "error": error}
    if payload is not None and len(payload) > MAX_PAYLOAD_BYTES:
        record["payload_truncated"] = True
        record["payload_size"] = len(payload)
        payload = payload[:MAX_PAYLOAD_BYTES]
    if payload is None:
        record["payload"] = None
    else:
        try:
            record["payload"] = payload.decode("utf-8")
        except UnicodeDecodeError:
            record["payload"] = base64.b64encode(payload).decode("ascii")
            record["payload_encoding"] = "base64"
    return orjson.dumps(record)
