"""WebSocket streams to the API server (`pods/exec`, `pods/portforward`) for `sluice exec` and `port-forward`.

The same credentials and TLS settings as `sluice.client.rest.RestClient` (whose SSL context and headers are
reused), on aiohttp's WebSocket client. A refused upgrade is turned into the server's `Status` by asking the
same URL again as a plain GET, which the API server answers with the same checks (and, when they all pass,
`Upgrade request required`).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Sequence

import aiohttp

from sluice.client.errors import ApiError, ConnectionFailed
from sluice.client.rest import RestClient

__all__ = ["open_stream", "StreamConnection"]


class StreamConnection:
    """An open WebSocket and the session that owns it; `close()` ends both."""

    def __init__(self, session: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.session = session
        self.ws = ws

    async def close(self) -> None:
        await self.ws.close()
        await self.session.close()


async def open_stream(rest: RestClient, path: str, query: Sequence[tuple[str, str]],
                      protocols: Sequence[str]) -> StreamConnection:
    url = rest.config.server.rstrip("/") + path + ("?" + urllib.parse.urlencode(list(query)) if query else "")
    headers = {k: v for k, v in rest._headers("*/*", None).items() if k != "Accept"}
    session = aiohttp.ClientSession()
    try:
        ws = await session.ws_connect(url, protocols=tuple(protocols), headers=headers,
                                      ssl=rest._ssl if rest._ssl is not None else False, max_msg_size=0,
                                      autoping=True, heartbeat=None)
    except aiohttp.WSServerHandshakeError as e:
        await session.close()
        # The body of a refused upgrade is not readable here: ask again as a plain request for the Status.
        rest.request("GET", path, query=list(query))
        raise ApiError(e.status, {"kind": "Status", "status": "Failure", "code": e.status,
                                  "message": f"unable to upgrade connection: {e.message}"}) from None
    except (aiohttp.ClientConnectionError, OSError) as e:
        await session.close()
        raise ConnectionFailed(f"Unable to connect to the server: {e}") from None
    if ws.protocol not in protocols:
        await ws.close()
        await session.close()
        raise ConnectionFailed(f"unable to upgrade connection: the server chose subprotocol {ws.protocol!r}")
    return StreamConnection(session, ws)
