"""The HTTP server's security, from the same ``Security`` record as the gRPC port.

- Bearer token: with ``security.token`` set, every ``/api/`` request needs ``Authorization:
  Bearer <token>``, compared in constant time (``hmac.compare_digest``) as the gRPC interceptor
  does; otherwise 401 ``UNAUTHENTICATED`` with the gRPC message. ``/healthz`` stays open (load
  balancers), and so do the page's static files: they hold no data, and the page asks for the
  token before it calls the API.
- TLS: ``tls_cert``/``tls_key`` make the port HTTPS; with ``tls_ca`` too, clients must present
  a certificate signed by it (mTLS), exactly like the gRPC port.
"""

from __future__ import annotations

import hmac
import ssl

from aiohttp import web
from aiohttp.typedefs import Middleware

from shared import errors
from shared.rpc.plumbing import Security

from .http_errors import Handler, error_response

PROTECTED_PREFIX = "/api/"
DENIED = "missing or wrong bearer token: send 'authorization: Bearer <token>'"


def token_middleware(token: str) -> Middleware:
    """Refuse ``/api/`` requests without ``Authorization: Bearer <token>``."""
    expected = f"Bearer {token}".encode()

    @web.middleware
    async def check_token(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(PROTECTED_PREFIX):
            given = request.headers.get("Authorization", "").encode("utf-8", "surrogateescape")
            if not hmac.compare_digest(given, expected):
                return error_response(errors.UnauthenticatedError(DENIED))
        return await handler(request)

    return check_token


def server_ssl_context(security: Security) -> ssl.SSLContext | None:
    """The HTTPS context for ``security`` (None = plain HTTP): the gRPC port's cert and key,
    and with ``tls_ca`` client certificates required and verified against it."""
    if security.tls_cert is None or security.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(security.tls_cert, security.tls_key)
    if security.tls_ca is not None:
        context.load_verify_locations(cafile=str(security.tls_ca))
        context.verify_mode = ssl.CERT_REQUIRED
    return context
