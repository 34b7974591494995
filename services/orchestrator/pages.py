"""One paging scheme for every list RPC: keyset cursors, pages bounded by count and by bytes.

A page token is the sort key of the last item returned, so the next page starts strictly after
it: an item added or removed between two calls never makes another repeat or vanish. The token
is URL-safe base64 of a small JSON array ``[kind, *key]``; ``kind`` names the list it belongs
to, so a ListJobs token is not taken by ListModels. Tokens are checked strictly (alphabet,
length, shape, types): anything but a token this server returned is INVALID_ARGUMENT on
``page_token``, never INTERNAL.

A page holds at most ``page_size`` items and at most ``PAGE_BYTES`` of encoded messages (half
the gRPC message limit, so a reply always fits), and at least one item when any remain.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from google.protobuf.message import Message

from shared import errors
from shared.rpc.plumbing import MAX_MESSAGE_BYTES

PAGE_BYTES = MAX_MESSAGE_BYTES // 2
MAX_PAGE_SIZE = 1000
TOKEN_MAX_CHARS = 1024
KEY_STRING_MAX = 512
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]+")

Key = tuple[str | int | float, ...]
T = TypeVar("T")
M = TypeVar("M", bound=Message)

_BAD_TOKEN = (
    "not a page token this server returned; pass the previous reply's next_page_token "
    "unchanged, or none for the first page"
)


def encode_token(kind: str, key: Key) -> str:
    document = json.dumps([kind, *key], separators=(",", ":"), allow_nan=False)
    return base64.urlsafe_b64encode(document.encode()).decode().rstrip("=")


def decode_token(token: str, kind: str, shape: Sequence[type]) -> Key | None:
    """The key a token carries (``None`` for an empty token: the first page). ``shape`` lists
    the key's types, e.g. ``(float, str)``; an int is accepted where a float is expected."""
    if not token:
        return None
    if len(token) > TOKEN_MAX_CHARS or not (token.isascii() and _TOKEN_RE.fullmatch(token)):
        raise errors.InvalidArgumentError(_BAD_TOKEN, field="page_token")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        document = json.loads(raw.decode("utf-8"))
    except (binascii.Error, ValueError):
        raise errors.InvalidArgumentError(_BAD_TOKEN, field="page_token") from None
    if (
        not isinstance(document, list)
        or len(document) != len(shape) + 1
        or document[0] != kind
        or not all(_fits(value, want) for value, want in zip(document[1:], shape, strict=True))
    ):
        raise errors.InvalidArgumentError(_BAD_TOKEN, field="page_token")
    return tuple(
        float(v) if want is float else v for v, want in zip(document[1:], shape, strict=True)
    )


def _fits(value: object, want: type) -> bool:
    if want is str:
        return isinstance(value, str) and len(value) <= KEY_STRING_MAX
    if want is int:
        return isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**63
    if want is float:
        return (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and math.isfinite(value)
            and abs(value) < 2**63
        )
    return False


def page_size(requested: int, default: int) -> int:
    if requested < 0:
        raise errors.InvalidArgumentError("must be >= 0", field="page_size")
    return min(requested or default, MAX_PAGE_SIZE)


def paginate(
    items: Iterable[T],
    *,
    kind: str,
    key: Callable[[T], Key],
    shape: Sequence[type],
    to_proto: Callable[[T], M],
    page_token: str,
    size: int,
    descending: bool = False,
    max_bytes: int = PAGE_BYTES,
) -> tuple[list[M], str]:
    """One page of ``items`` (already sorted by ``key``, ascending or ``descending``) after the
    token's key, as messages; and the token of the next page ("" after the last)."""
    after = decode_token(page_token, kind, shape)
    out: list[M] = []
    keys: list[Key] = []
    used = 0
    for item in items:
        item_key = key(item)
        if after is not None and (item_key >= after if descending else item_key <= after):
            continue
        if len(out) >= size:
            return out, encode_token(kind, keys[-1])
        message = to_proto(item)
        cost = message.ByteSize() + 8  # with the repeated field's tag and length
        if out and used + cost > max_bytes:
            return out, encode_token(kind, keys[-1])
        out.append(message)
        keys.append(item_key)
        used += cost
    return out, ""
