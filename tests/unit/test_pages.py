"""Page tokens and page sizes (``services.orchestrator.pages``), as pure functions.

A token carries the last item's sort key, so the next page starts strictly after it whatever
was added or removed in between; anything but a token this server returned is INVALID_ARGUMENT
on ``page_token``; a page never holds more than its byte budget (but always one item).
"""

from __future__ import annotations

import base64
import json

import pytest

from services.orchestrator.pages import (
    MAX_PAGE_SIZE,
    decode_token,
    encode_token,
    page_size,
    paginate,
)
from shared import errors
from shared.rpc.v1 import orchestrator_pb2 as opb

Item = tuple[float, str, int]


def as_proto(item: Item) -> opb.Node:
    """Any message will do; its size follows the item's third field."""
    return opb.Node(address=item[1], detail="x" * item[2])


def page(
    items: list[Item], token: str = "", size: int = 2, max_bytes: int = 1 << 20
) -> tuple[list[str], str]:
    ordered = sorted(items, reverse=True)
    protos, next_token = paginate(
        ordered,
        kind="test",
        key=lambda i: (i[0], i[1]),
        shape=(float, str),
        to_proto=as_proto,
        page_token=token,
        size=size,
        descending=True,
        max_bytes=max_bytes,
    )
    return [p.address for p in protos], next_token


def all_pages(items: list[Item], size: int = 2, max_bytes: int = 1 << 20) -> list[list[str]]:
    out, token = [], ""
    while True:
        names, token = page(items, token, size, max_bytes)
        out.append(names)
        if not token:
            return out


def test_pages_cover_every_item_once_newest_first() -> None:
    items = [(float(t), f"j{t}", 0) for t in range(5)]
    assert all_pages(items) == [["j4", "j3"], ["j2", "j1"], ["j0"]]


def test_an_item_added_between_pages_never_repeats_one() -> None:
    items = [(float(t), f"j{t}", 0) for t in range(5)]
    first, token = page(items)
    items.append((10.0, "new", 0))  # newest: sorts before the cursor
    second, token = page(items, token)
    third, token = page(items, token)
    assert (first, second, third, token) == (["j4", "j3"], ["j2", "j1"], ["j0"], "")


def test_an_item_removed_between_pages_skips_no_other() -> None:
    items = [(float(t), f"j{t}", 0) for t in range(5)]
    first, token = page(items)
    items.remove((3.0, "j3", 0))  # the last item of the page just returned
    second, _ = page(items, token)
    assert (first, second) == (["j4", "j3"], ["j2", "j1"])


def test_ties_in_time_are_broken_by_the_second_key() -> None:
    items = [(1.0, name, 0) for name in "abcde"]
    assert all_pages(items) == [["e", "d"], ["c", "b"], ["a"]]


def test_a_page_stops_at_its_byte_budget_but_always_holds_one_item() -> None:
    items = [(float(t), f"j{t}", 400) for t in range(6)]
    pages = all_pages(items, size=100, max_bytes=1000)
    assert pages == [["j5", "j4"], ["j3", "j2"], ["j1", "j0"]]
    huge = [(1.0, "big", 5000), (0.0, "small", 0)]
    assert all_pages(huge, size=100, max_bytes=1000) == [["big"], ["small"]]


def test_the_page_size_is_defaulted_capped_and_checked() -> None:
    assert page_size(0, 50) == 50
    assert page_size(7, 50) == 7
    assert page_size(10**9, 50) == MAX_PAGE_SIZE
    with pytest.raises(errors.InvalidArgumentError) as info:
        page_size(-1, 50)
    assert info.value.field == "page_size"


def test_a_token_round_trips_its_key() -> None:
    token = encode_token("jobs", (1712345678.123456, "abc"))
    assert decode_token(token, "jobs", (float, str)) == (1712345678.123456, "abc")
    assert decode_token("", "jobs", (float, str)) is None


def _b64(document: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(document).encode()).decode()


BAD_TOKENS = [
    pytest.param("9" * 5000, id="5000-digits"),
    pytest.param("A" * 2000, id="too-long"),
    pytest.param("garbage!", id="bad-alphabet"),
    pytest.param("\u00b2", id="superscript"),
    pytest.param("abc", id="bad-base64-padding"),
    pytest.param(base64.urlsafe_b64encode(b"\xff\xfe").decode(), id="not-utf8"),
    pytest.param(base64.urlsafe_b64encode(b"-1").decode(), id="a-number"),
    pytest.param(_b64({"a": 1}), id="an-object"),
    pytest.param(_b64(["jobs", 1.0]), id="too-short"),
    pytest.param(_b64(["jobs", 1.0, "a", "b"]), id="too-long-array"),
    pytest.param(_b64(["models", 1.0, "a"]), id="another-lists-token"),
    pytest.param(_b64(["jobs", "1.0", "a"]), id="wrong-type"),
    pytest.param(_b64(["jobs", True, "a"]), id="bool-for-float"),
    pytest.param(_b64(["jobs", 1e400, "a"]), id="infinite"),
    pytest.param(_b64(["jobs", 10**30, "a"]), id="huge-number"),
    pytest.param(_b64(["jobs", 1.0, "a" * 600]), id="huge-string"),
    pytest.param(_b64(["jobs", 1.0, None]), id="null"),
]


@pytest.mark.parametrize("token", BAD_TOKENS)
def test_anything_but_a_token_this_server_returned_is_invalid_argument(token: str) -> None:
    with pytest.raises(errors.InvalidArgumentError) as info:
        decode_token(token, "jobs", (float, str))
    assert info.value.field == "page_token"
    assert "next_page_token" in info.value.message
    assert len(info.value.message) < 200
