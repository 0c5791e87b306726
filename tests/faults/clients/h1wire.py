"""A minimal asyncio HTTP/1.1 client for the fault suite.

Raw on purpose: it sends header bytes exactly as given (control characters,
non-ASCII, 64 KB values) and reads one response (Content-Length or chunked)
from a keep-alive connection, so callers see what the server did, including
`Connection: close` and a close without any response.
"""

import asyncio


class H1Response:
    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int, headers: dict[str, str], body: bytes):
        self.status, self.headers, self.body = status, headers, body

    @property
    def wants_close(self) -> bool:
        return "close" in self.headers.get("connection", "").lower()


class H1Connection:
    """One keep-alive connection; `request` may be called again after a response."""

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int, timeout: float = 5.0) -> "H1Connection":
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port, limit=1 << 20), timeout)
        return cls(reader, writer)

    async def request(self, path: str, headers: list[tuple[bytes | str, bytes | str]] = (),
                      host: str = "scf", method: str = "GET") -> H1Response:
        head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n".encode()
        for name, value in headers:
            name = name.encode("latin-1") if isinstance(name, str) else name
            value = value.encode("utf-8") if isinstance(value, str) else value
            head += name + b": " + value + b"\r\n"
        self.writer.write(head + b"\r\n")
        await self.writer.drain()
        return await self.read_response()

    async def read_response(self) -> H1Response:
        status_line = await self.reader.readuntil(b"\r\n")
        status = int(status_line.split(b" ", 2)[1])
        headers: dict[str, str] = {}
        while True:
            line = await self.reader.readuntil(b"\r\n")
            if line == b"\r\n":
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        elif "chunked" in headers.get("transfer-encoding", ""):
            body = b""
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                body += await self.reader.readexactly(size + 2)
                if size == 0:
                    break
        else:
            body = b""
        return H1Response(status, headers, body)

    def close(self):
        self.writer.close()


async def get_once(host: str, port: int, path: str, headers=(), timeout: float = 5.0) -> H1Response:
    """One request on a new connection, closed afterwards."""
    connection = await H1Connection.open(host, port, timeout)
    try:
        return await asyncio.wait_for(connection.request(path, headers, host=f"{host}:{port}"), timeout)
    finally:
        connection.close()
