"""The rules for names that cross the wire and may become paths or dial targets.

One rule each, enforced at every edge that takes one: a job id (it names a directory on the
trainer and a staging file on the orchestrator, so it is checked before anything touches a
disk), a node address (the orchestrator dials it, keeps it and shows it in errors), and a node
id (an address or a short name, as requests and registrations name nodes).
"""

from __future__ import annotations

import ipaddress
import re

from shared import errors

JOB_ID_MAX = 64
_JOB_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def check_job_id(job_id: str, field: str = "job_id") -> str:
    """Return ``job_id`` if it is 1-64 ASCII letters, digits, '_' or '-' (not leading '-' or
    '_'); raise ``InvalidArgumentError`` naming ``field`` otherwise. No '/', '.', or NUL can
    pass, so a job id is always one plain path component."""
    if not job_id:
        raise errors.InvalidArgumentError("a job id is required", field=field)
    if not (job_id.isascii() and _JOB_ID_RE.fullmatch(job_id)):
        raise errors.InvalidArgumentError(
            f"{_shown(job_id)} is not a job id: use 1-{JOB_ID_MAX} ASCII letters, digits, '_' "
            "or '-' (job ids come from SubmitJob, ListJobs or a Train stream)",
            field=field,
        )
    return job_id


ADDRESS_MAX = 261
"""253 characters of hostname, ':' and a 5-digit port, plus brackets of an IPv6 literal."""
_LABEL_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def check_address(address: str, field: str = "address") -> str:
    """Return ``address`` if it is ``HOST:PORT`` a gRPC channel can dial over TCP: HOST a DNS
    hostname, an IPv4 literal or a bracketed IPv6 literal (ASCII only), PORT 1-65535 in ASCII
    digits. Anything else (``unix:`` targets, spaces, schemes, huge strings) is refused."""
    problem = _address_problem(address)
    if problem:
        raise errors.InvalidArgumentError(
            f"{_shown(address)} is not HOST:PORT the orchestrator can dial: {problem}", field=field
        )
    return address


def _address_problem(address: str) -> str:
    if not address:
        return "an address is required"
    if len(address) > ADDRESS_MAX:
        return f"longer than {ADDRESS_MAX} characters"
    if not address.isascii() or not address.isprintable() or " " in address:
        return "use printable ASCII without spaces"
    if "/" in address:
        return "use HOST:PORT over TCP, not a unix: socket, a path or a URL"
    host, sep, port = address.rpartition(":")
    if not sep or not host:
        return "expected HOST:PORT, e.g. gpu-host:50052"
    if not (port.isdigit() and 0 < int(port) < 65536 and len(port) <= 5):
        return f"port {port[:8]!r} is not a number in 1-65535"
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return f"{host} is not an IPv6 literal"
        return ""
    if ":" in host:
        return "an IPv6 literal must be in brackets, e.g. [::1]:50052"
    try:
        ipaddress.IPv4Address(host)
        return ""
    except ValueError:
        pass
    labels = host.removesuffix(".").split(".")
    if len(host) > 253 or not all(_LABEL_RE.fullmatch(label) for label in labels):
        return f"{host!r} is not a hostname or IP literal"
    if labels[-1].isdigit():
        return f"{host!r} is not a hostname or IP literal"
    return ""


_NODE_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def check_node_id(node_id: str, field: str = "node") -> str:
    """Return ``node_id`` if it names a trainer node: its ``HOST:PORT`` address (the default id
    a trainer gives itself) or 1-64 ASCII letters, digits, '.', '_' or '-'."""
    if node_id.isascii() and _NODE_ID_RE.fullmatch(node_id):
        return node_id
    try:
        return check_address(node_id, field=field)
    except errors.InvalidArgumentError as exc:
        raise errors.InvalidArgumentError(
            f"{exc.message}; or name a node by its id (1-64 letters, digits, '.', '_', '-')",
            field=field,
        ) from None


def _shown(value: str) -> str:
    """``value`` quoted for a message, cut so that a huge input never makes a huge error."""
    if len(value) <= 80:
        return repr(value)
    return f"{value[:60]!r}… ({len(value)} characters)"
