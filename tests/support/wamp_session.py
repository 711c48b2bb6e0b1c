"""The one autobahn-python (asyncio) WAMP v2 joiner of the Python suites.

`join()` opens a WebSocket to herald, sends HELLO (with optional authmethods, authid and authextra),
answers CHALLENGE through `on_challenge` and returns the session once WELCOME arrives, or raises
`Aborted` when the router answers ABORT or drops the transport first. `close_sessions()` leaves or
disconnects sessions and waits for their transports to go. autobahn is imported lazily, so a suite
that never joins a v2 session does not need it.
"""

from __future__ import annotations

import asyncio
import inspect

from herald_launcher import WAIT_S


class Aborted(Exception):
    """The router refused to open the session (ABORT) or ended it before WELCOME."""

    def __init__(self, reason: str, message: str | None):
        super().__init__(f"ABORT {reason}: {message}")
        self.reason = reason
        self.message = message or ""


def run(coro, timeout: float = 30.0):
    """Runs one async test body on a fresh loop, bounded in time."""

    async def bounded():
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


async def within(awaitable, what: str, timeout: float = WAIT_S):
    """Awaits with a timeout whose failure says what was awaited."""
    try:
        return await asyncio.wait_for(awaitable, timeout)
    except asyncio.TimeoutError:
        raise AssertionError(f"timed out after {timeout} s waiting for {what}") from None


def serializer_for(name: str):
    """autobahn serializer instance for `json` or `msgpack`."""
    from autobahn.wamp import serializer
    if name == "json":
        return serializer.JsonSerializer()
    if name == "msgpack":
        return serializer.MsgPackSerializer()
    raise ValueError(name)


async def join(port: int, realm: str, *, serializer: str = "json", path: str = "/ws", origin: str | None = None,
               authmethods=None, authid=None, authextra=None, on_challenge=None,
               welcome_timeout: float = WAIT_S, track: list | None = None):
    """A joined autobahn-python session on 127.0.0.1:`port`; raises Aborted on ABORT.

    `on_challenge(challenge)` returns the AUTHENTICATE signature (or an awaitable of it); every
    CHALLENGE is also kept in `session.challenges`. The session's futures `joined` (WELCOME
    details), `left` (CloseDetails) and `gone` (transport closed) tell what happened to it. The
    session goes into `track` as soon as it exists, aborted or not, for `close_sessions(track)`."""
    from autobahn.asyncio.wamp import ApplicationSession
    from autobahn.asyncio.websocket import WampWebSocketClientFactory
    from autobahn.wamp.types import ComponentConfig

    loop = asyncio.get_running_loop()

    class Probe(ApplicationSession):
        def __init__(self, config):
            super().__init__(config)
            self.joined = loop.create_future()
            self.left = loop.create_future()
            self.gone = loop.create_future()
            self.challenges = []

        def onConnect(self):
            self.join(realm, authmethods=authmethods, authid=authid, authextra=authextra)

        async def onChallenge(self, challenge):
            self.challenges.append(challenge)
            if on_challenge is None:
                raise RuntimeError(f"unexpected CHALLENGE {challenge.method}")
            answer = on_challenge(challenge)
            if inspect.isawaitable(answer):
                answer = await answer
            return answer

        def onJoin(self, details):
            if not self.joined.done():
                self.joined.set_result(details)

        def onLeave(self, details):
            if not self.left.done():
                self.left.set_result(details)
            # Fail outstanding requests and drop the transport, as the default does.
            return super().onLeave(details)

        def onDisconnect(self):
            super().onDisconnect()
            if not self.gone.done():
                self.gone.set_result(True)

    created = loop.create_future()

    def make():
        session = Probe(ComponentConfig(realm=realm))
        if not created.done():
            created.set_result(session)
        return session

    url = f"ws://127.0.0.1:{port}{path}"
    factory = WampWebSocketClientFactory(make, url=url, serializers=[serializer_for(serializer)], origin=origin)
    await within(loop.create_connection(factory, "127.0.0.1", port), f"TCP connect to {url}")
    session = await within(created, f"the WebSocket upgrade of {url}")
    if track is not None:
        track.append(session)
    await within(asyncio.wait([session.joined, session.left, session.gone], return_when=asyncio.FIRST_COMPLETED),
                 f"WELCOME or ABORT on realm {realm}", timeout=welcome_timeout)
    if not session.joined.done():
        if session.left.done():
            details = session.left.result()
            raise Aborted(details.reason, details.message)
        raise Aborted("(transport closed)", None)
    return session


async def close_sessions(sessions: list):
    """Leaves (or disconnects) every session, waits for the transports to close, aborts the rest."""
    for session in sessions:
        try:
            if session.is_attached():
                session.leave()
            elif session.is_connected():
                session.disconnect()
        except Exception:  # noqa: BLE001 - best effort cleanup
            pass
    pending = [s.gone for s in sessions if not s.gone.done()]
    if pending:
        await asyncio.wait(pending, timeout=WAIT_S)
    for session in sessions:
        if not session.gone.done() and session._transport is not None:
            session._transport.transport.abort()
