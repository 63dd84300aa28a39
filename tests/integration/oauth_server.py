"""A small OAuth2 token endpoint (refresh_token grant only) over HTTPS on 127.0.0.1, port 0, for tests.

Runs on the test's event loop (asyncio streams + a trustme certificate). It knows a set of refresh tokens
and hands out numbered access tokens (`at-1`, `at-2`, ...); `rotate=True` also issues a new refresh token
each time (as Microsoft does). Every request is recorded in `requests` (the parsed form). Script a reply
with `next_replies` ((status, JSON body) pairs, used first) or make it hang with `hang = True`.

    from tests.integration.oauth_server import oauth_server_fixture  # noqa: F401  (fixture `oauth_server`)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest_asyncio
import trustme

from tests.secrets_scan import register_secret

TOKEN_PATH = "/oauth2/v2.0/token"


@dataclass
class TokenServer:
    ca: trustme.CA
    refresh_tokens: set[str] = field(default_factory=lambda: {"rt-initial"})
    expires_in: int | str = 3600
    rotate: bool = False
    hang: bool = False
    next_replies: list[tuple[int, dict[str, object]]] = field(default_factory=list)

    host: str = field(init=False, default="127.0.0.1")
    port: int = field(init=False, default=0)
    requests: list[dict[str, str]] = field(init=False, default_factory=list)
    issued: list[str] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self._server: asyncio.AbstractServer | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert("127.0.0.1", "localhost").configure_cert(self.context)
        for token in self.refresh_tokens:  # the end-of-session secrets scan looks for every token
            register_secret(token, label="OAuth refresh token")

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}{TOKEN_PATH}"

    def write_ca_file(self, path: Path) -> Path:
        self.ca.cert_pem.write_to_path(str(path))
        return path

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, 0, ssl=self.context)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(writer)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {
                k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:] if ":" in ln)
            }
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            form = dict(urllib.parse.parse_qsl(body.decode("ascii")))
            self.requests.append(form)
            if self.hang:
                await asyncio.Event().wait()
            status, reply = self._answer(method, path, headers, form)
            payload = json.dumps(reply).encode()
            writer.write(
                f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
                "Connection: close\r\n\r\n".encode()
                + payload
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort()
            self._handlers.discard(task)

    def _answer(
        self, method: str, path: str, headers: dict[str, str], form: dict[str, str]
    ) -> tuple[int, dict[str, object]]:
        if self.next_replies:
            return self.next_replies.pop(0)
        if method != "POST" or path != TOKEN_PATH:
            return 404, {"error": "not_found"}
        if headers.get("content-type") != "application/x-www-form-urlencoded":
            return 400, {"error": "invalid_request", "error_description": "form encoding expected"}
        if form.get("grant_type") != "refresh_token" or not form.get("client_id"):
            return 400, {"error": "invalid_request"}
        token = form.get("refresh_token", "")
        if token not in self.refresh_tokens:
            return 400, {
                "error": "invalid_grant",
                "error_description": "AADSTS70008: The refresh token has expired due to inactivity.",
            }
        access = f"at-{len(self.issued) + 1}"
        self.issued.append(access)
        register_secret(access, label="OAuth access token")
        reply: dict[str, object] = {
            "token_type": "Bearer",
            "access_token": access,
            "expires_in": self.expires_in,
            "scope": form.get("scope", ""),
        }
        if self.rotate:
            new = f"rt-{len(self.issued)}"
            register_secret(new, label="OAuth refresh token")
            self.refresh_tokens.discard(token)
            self.refresh_tokens.add(new)
            reply["refresh_token"] = new
        return 200, reply


@pytest_asyncio.fixture(name="oauth_server")
async def oauth_server_fixture() -> AsyncIterator[TokenServer]:
    server = TokenServer(ca=trustme.CA())
    await server.start()
    try:
        yield server
    finally:
        with contextlib.suppress(Exception):
            await server.stop()


@dataclass
class TokenInfoServer:
    """A plain-HTTP token-info endpoint on 127.0.0.1 for Dovecot's oauth2 passdb (`tokeninfo_url`): a GET
    with `?access_token=` answers {"email": user} for a token in `valid`, 401 otherwise. Every token asked
    about is recorded in `asked`."""

    valid: dict[str, str] = field(default_factory=dict)  # token → user
    host: str = field(init=False, default="127.0.0.1")
    port: int = field(init=False, default=0)
    asked: list[str] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self._server: asyncio.AbstractServer | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/tokeninfo?access_token="

    def dovecot_conf(self, directory: Path) -> str:
        """Extra Dovecot configuration: XOAUTH2 next to PLAIN/LOGIN, checked by an oauth2 passdb here."""
        args = directory / "dovecot-oauth2.conf.ext"
        args.write_text(f"tokeninfo_url = {self.url}\nusername_attribute = email\n", encoding="utf-8")
        args.chmod(0o644)
        return (
            "auth_mechanisms = plain login xoauth2\n"
            f"passdb {{\n  driver = oauth2\n  mechanisms = xoauth2\n  args = {args}\n}}\n"
        )

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            target = head.split(b"\r\n", 1)[0].split(b" ")[1].decode("ascii", "replace")
            token = urllib.parse.unquote(target.partition("access_token=")[2])
            self.asked.append(token)
            user = self.valid.get(token)
            status, body = (
                ("200 OK", {"email": user, "active": True})
                if user
                else (
                    "401 Unauthorized",
                    {"error": "invalid_token"},
                )
            )
            payload = json.dumps(body).encode()
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
                "Connection: close\r\n\r\n".encode()
                + payload
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, IndexError):
            pass
        finally:
            writer.transport.abort()
