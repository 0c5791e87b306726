"""HTTP/2 plumbing shared by the fault suite's attackers and clients.

`H2Client` is an asyncio connection driven by hyper-h2: it records each
stream's response, gRPC messages, trailers and resets, credits flow control
as data is read, and records the GOAWAY and the close. Raw frame helpers
cover what hyper-h2 refuses to produce (a HEADERS block left open for
CONTINUATION frames); gRPC framing is five bytes before each message.
"""

import asyncio
import struct
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
FRAME_HEADERS, FRAME_RST_STREAM, FRAME_SETTINGS, FRAME_PING, FRAME_GOAWAY, FRAME_CONTINUATION = 1, 3, 4, 6, 7, 9
FLAG_ACK = FLAG_END_STREAM = 0x1
FLAG_END_HEADERS = 0x4
GOAWAY_NAMES = {
    0: "NO_ERROR", 1: "PROTOCOL_ERROR", 2: "INTERNAL_ERROR", 3: "FLOW_CONTROL_ERROR", 4: "SETTINGS_TIMEOUT",
    5: "STREAM_CLOSED", 6: "FRAME_SIZE_ERROR", 7: "REFUSED_STREAM", 8: "CANCEL", 9: "COMPRESSION_ERROR",
    10: "CONNECT_ERROR", 11: "ENHANCE_YOUR_CALM", 12: "INADEQUATE_SECURITY", 13: "HTTP_1_1_REQUIRED",
}
GRPC_CODES = {
    0: "OK", 1: "CANCELLED", 2: "UNKNOWN", 3: "INVALID_ARGUMENT", 4: "DEADLINE_EXCEEDED", 5: "NOT_FOUND",
    6: "ALREADY_EXISTS", 7: "PERMISSION_DENIED", 8: "RESOURCE_EXHAUSTED", 9: "FAILED_PRECONDITION",
    10: "ABORTED", 11: "OUT_OF_RANGE", 12: "UNIMPLEMENTED", 13: "INTERNAL", 14: "UNAVAILABLE",
    15: "DATA_LOSS", 16: "UNAUTHENTICATED",
}


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    """One raw HTTP/2 frame."""
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream_id) + payload


def grpc_message(payload: bytes = b"") -> bytes:
    """A length-prefixed, uncompressed gRPC message."""
    return b"\x00" + struct.pack(">I", len(payload)) + payload


def grpc_request_headers(authority: str, path: str, timeout: str | None = None, extra=()):
    headers = [
        (":method", "POST"), (":scheme", "http"), (":authority", authority), (":path", path),
        ("content-type", "application/grpc"), ("te", "trailers"),
    ]
    if timeout:
        headers.append(("grpc-timeout", timeout))
    headers.extend(extra)
    return headers


def rest_request_headers(authority: str, path: str, extra=()):
    return [(":method", "GET"), (":scheme", "http"), (":authority", authority), (":path", path), *extra]


def _text(value) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value


class Stream:
    """What one stream received."""

    __slots__ = ("id", "started", "headers", "trailers", "reset", "ended", "ended_at", "messages",
                 "first_message_at", "body", "_buffer", "_done")

    def __init__(self, stream_id: int):
        self.id = stream_id
        self.started = time.monotonic()
        self.headers: dict[str, str] = {}
        self.trailers: dict[str, str] = {}
        self.reset: int | None = None
        self.ended = False
        self.ended_at: float | None = None
        self.messages = 0
        self.first_message_at: float | None = None
        self.body = bytearray()
        self._buffer = bytearray()
        self._done = asyncio.Event()

    @property
    def status(self) -> int | None:
        value = self.headers.get(":status")
        return int(value) if value else None

    @property
    def grpc_status(self) -> int | None:
        value = self.trailers.get("grpc-status", self.headers.get("grpc-status"))
        return int(value) if value is not None else None

    @property
    def grpc_message(self) -> str:
        return self.trailers.get("grpc-message", self.headers.get("grpc-message", ""))

    @property
    def finished(self) -> bool:
        return self.ended or self.reset is not None

    def _data(self, data: bytes, keep_body: bool):
        if keep_body:
            self.body += data
        # Count whole gRPC messages without keeping them.
        self._buffer += data
        while len(self._buffer) >= 5:
            length = struct.unpack(">I", self._buffer[1:5])[0]
            if len(self._buffer) < 5 + length:
                break
            del self._buffer[: 5 + length]
            self.messages += 1
            if self.first_message_at is None:
                self.first_message_at = time.monotonic()

    def _finish(self):
        if self.ended_at is None:
            self.ended_at = time.monotonic()
        self._done.set()

    async def wait(self, timeout: float) -> bool:
        """Until the stream ends or is reset; False on timeout."""
        try:
            await asyncio.wait_for(self._done.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False


class H2Client:
    """One HTTP/2 (h2c, prior knowledge) client connection."""

    def __init__(self, reader, writer, conn, keep_body: bool):
        self.reader, self.writer, self.conn = reader, writer, conn
        self.keep_body = keep_body
        self.streams: dict[int, Stream] = {}
        self.settings_received = asyncio.Event()
        self.closed = asyncio.Event()
        self.closed_at: float | None = None
        self.goaway: dict | None = None
        self.protocol_error: str | None = None
        self.opened_at = time.monotonic()
        self.stream_ended = asyncio.Condition()
        self._pump = asyncio.get_running_loop().create_task(self._read_loop())

    @classmethod
    async def connect(cls, host: str, port: int, validate: bool = True, keep_body: bool = False,
                      window: int = 1 << 24) -> "H2Client":
        config = h2.config.H2Configuration(
            client_side=True, header_encoding=None, validate_outbound_headers=validate,
            normalize_outbound_headers=validate, validate_inbound_headers=False,
        )
        conn = h2.connection.H2Connection(config=config)
        conn.local_settings = h2.settings.Settings(
            client=True, initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window,
                                         h2.settings.SettingCodes.ENABLE_PUSH: 0})
        conn.initiate_connection()
        conn.increment_flow_control_window(window)
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
        client = cls(reader, writer, conn, keep_body)
        client.flush()
        return client

    def flush(self):
        data = self.conn.data_to_send()
        if data and not self.writer.is_closing():
            self.writer.write(data)

    async def drain(self):
        self.flush()
        try:
            await self.writer.drain()
        except (ConnectionError, OSError):
            pass

    @property
    def alive(self) -> bool:
        return not self.closed.is_set() and self.goaway is None

    def max_concurrent_streams(self) -> int:
        return self.conn.remote_settings.max_concurrent_streams

    def open_streams(self) -> int:
        return self.conn.open_outbound_streams

    def request(self, headers, body: bytes | None = None) -> Stream:
        """Sends a request (HEADERS, then DATA if body); returns its stream."""
        stream_id = self.conn.get_next_available_stream_id()
        stream = Stream(stream_id)
        self.streams[stream_id] = stream
        self.conn.send_headers(stream_id, headers, end_stream=body is None)
        if body is not None:
            self.conn.send_data(stream_id, body, end_stream=True)
        return stream

    def reset(self, stream_id: int, code: int = 8):
        try:
            self.conn.reset_stream(stream_id, error_code=code)
        except h2.exceptions.StreamClosedError:
            pass

    def close(self):
        if not self.writer.is_closing():
            self.writer.close()
        self._pump.cancel()

    async def _read_loop(self):
        try:
            while True:
                data = await self.reader.read(65536)
                if not data:
                    break
                try:
                    events = self.conn.receive_data(data)
                except h2.exceptions.ProtocolError as error:
                    self.protocol_error = repr(error)
                    break
                ended = False
                for event in events:
                    ended |= self._handle(event)
                self.flush()
                if ended:
                    async with self.stream_ended:
                        self.stream_ended.notify_all()
        except (ConnectionError, OSError):
            pass
        finally:
            self.closed_at = time.monotonic()
            self.closed.set()
            for stream in self.streams.values():
                stream._done.set()
            async with self.stream_ended:
                self.stream_ended.notify_all()

    def _handle(self, event) -> bool:
        stream = self.streams.get(getattr(event, "stream_id", None) or 0)
        if isinstance(event, h2.events.ResponseReceived) and stream:
            stream.headers = {_text(k): _text(v) for k, v in event.headers}
        elif isinstance(event, h2.events.DataReceived) and stream:
            stream._data(event.data, self.keep_body)
            if event.flow_controlled_length:
                try:
                    self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                except h2.exceptions.StreamClosedError:
                    pass
        elif isinstance(event, h2.events.TrailersReceived) and stream:
            stream.trailers = {_text(k): _text(v) for k, v in event.headers}
        elif isinstance(event, h2.events.StreamEnded) and stream:
            stream.ended = True
            stream._finish()
            return True
        elif isinstance(event, h2.events.StreamReset) and stream:
            stream.reset = int(event.error_code)
            stream._finish()
            return True
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            self.settings_received.set()
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.goaway = {
                "code": GOAWAY_NAMES.get(int(event.error_code), str(event.error_code)),
                "last_stream_id": event.last_stream_id,
                "debug": (event.additional_data or b"").decode("latin-1")[:200],
                "after_s": round(time.monotonic() - self.opened_at, 3),
            }
            return True
        return False

    async def wait_for_slot(self, timeout: float) -> bool:
        """Until fewer streams are open than the server allows (or the end)."""
        deadline = time.monotonic() + timeout
        async with self.stream_ended:
            while self.alive and self.open_streams() >= self.max_concurrent_streams():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                try:
                    await asyncio.wait_for(self.stream_ended.wait(), remaining)
                except asyncio.TimeoutError:
                    return False
        return self.alive


def outcome(stream: Stream, client: H2Client) -> str:
    """One word for what happened to a stream: ok-open, grpc-CODE, http-NNN, reset-CODE, goaway, closed, pending."""
    if stream.reset is not None:
        return "reset-" + GOAWAY_NAMES.get(stream.reset, str(stream.reset))
    if stream.ended:
        code = stream.grpc_status
        if code is not None:
            return "grpc-" + GRPC_CODES.get(code, str(code))
        return f"http-{stream.status}"
    if stream.headers:
        code = stream.grpc_status
        if code is not None:
            return "grpc-" + GRPC_CODES.get(code, str(code))
        return "ok-open"
    if client.goaway is not None and stream.id > client.goaway["last_stream_id"]:
        return "goaway"
    if client.closed.is_set():
        return "closed"
    return "pending"
