# RFC 6455 cases against `echo_server --transport ws --messages --max-frame 1000`, from
# Python: Python's `websockets` package for what a library sends (text and binary
# echoes, a fragmented message, a ping with a payload, the close handshake), and frames
# built by hand over a plain socket for what no library sends (invalid UTF-8, reserved
# bits and opcodes, broken control frames, bad close codes, an oversized message).
# Each case names the Autobahn|Testsuite cases it follows. Prints one line per case and
# `rfc6455 ok N` at the end; any failure raises.
import asyncio
import base64
import os
import socket
import struct
import sys

import websockets

HOST, PORT = sys.argv[1].rsplit(":", 1)
PORT = int(PORT)
PATH = "/ws"
MAX = 1000

TEXT, BINARY, CONT, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA


def frame(fin, rsv, opcode, payload):
    """One masked client frame; `rsv` holds RSV1..RSV3 as its three low bits."""
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", first, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", first, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", first, 0x80 | 127, n)
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def close_payload(code, reason=b""):
    return struct.pack("!H", code) + reason


class Raw:
    """A client that is no library: the upgrade and every frame by hand."""

    def __init__(self):
        self.sock = socket.create_connection((HOST, PORT), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET {PATH} HTTP/1.1\r\nHost: {HOST}:{PORT}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self.fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101"), head

    def fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError
        self.buf += chunk

    def send(self, data):
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server failed the connection already (fail fast)

    def parse(self):
        """One whole server frame (first byte, payload) off the buffer, or None."""
        b = self.buf
        if len(b) < 2:
            return None
        n, at = b[1] & 0x7F, 2
        if n == 126:
            if len(b) < 4:
                return None
            n, at = struct.unpack("!H", b[2:4])[0], 4
        elif n == 127:
            if len(b) < 10:
                return None
            n, at = struct.unpack("!Q", b[2:10])[0], 10
        if len(b) < at + n:
            return None
        self.buf = b[at + n :]
        return b[0], b[at : at + n]

    def next(self):
        """The next server frame (opcode, payload), pings skipped; None at EOF."""
        while True:
            got = self.parse()
            if got is None:
                try:
                    self.fill()
                except (EOFError, ConnectionResetError):
                    return None
                continue
            first, payload = got
            assert first & 0x80, "the server sends whole messages"
            assert first & 0x70 == 0, "no reserved bits from the server"
            if first & 0x0F != PING:
                return first & 0x0F, payload


def raw_case(name, frames, want_code, want=()):
    """Sends `frames`; expects the frames `want` (opcode, payload), then a close with
    `want_code` (which it answers), then the end of the connection. With `want_code`
    None the case expects the session to stay up: it closes with 1000 itself."""
    raw = Raw()
    for f in frames:
        raw.send(f)
    got = [raw.next() for _ in want]
    assert got == list(want), f"{name}: got {got}, want {list(want)}"
    if want_code is None:
        raw.send(frame(True, 0, CLOSE, close_payload(1000)))
        want_code = 1000
    msg = raw.next()
    assert msg is not None and msg[0] == CLOSE, f"{name}: {msg} where a close was due"
    code = struct.unpack("!H", msg[1][:2])[0] if len(msg[1]) >= 2 else None
    assert code == want_code, f"{name}: close code {code}, want {want_code}"
    raw.send(frame(True, 0, CLOSE, close_payload(code or 1000)))
    rest = raw.next()
    assert rest is None, f"{name}: {rest} after the close"
    raw.sock.close()
    print(f"case {name}: close {code}")


INVALID = "κόσμε".encode() + b"\xf4\x90\x80\x80"
EURO = "€".encode()

RAW_CASES = [
    ("6.3.1 invalid UTF-8", [frame(True, 0, TEXT, INVALID)], 1007),
    ("6.4.1 invalid UTF-8 fails fast", [frame(False, 0, TEXT, INVALID)], 1007),
    (
        "6.4.3 invalid continuation of a code point cut across fragments",
        [frame(False, 0, TEXT, EURO[:1]), frame(True, 0, CONT, b"AB")],
        1007,
    ),
    ("3.1 RSV1 set", [frame(True, 4, TEXT, b"rsv")], 1002),
    ("3.4 RSV3 set", [frame(True, 1, BINARY, b"rsv")], 1002),
    ("4.1.1 reserved data opcode", [frame(True, 0, 3, b"")], 1002),
    ("4.2.1 reserved control opcode", [frame(True, 0, 11, b"")], 1002),
    ("2.5 ping over 125 bytes", [frame(True, 0, PING, b"p" * 126)], 1002),
    ("5.1 fragmented ping", [frame(False, 0, PING, b"a"), frame(True, 0, CONT, b"b")], 1002),
    ("5.9 continuation without a start", [frame(True, 0, CONT, b"x")], 1002),
    ("7.3.2 close with a 1-byte payload", [frame(True, 0, CLOSE, b"\x03")], 1002),
    ("7.5.1 close reason not UTF-8", [frame(True, 0, CLOSE, close_payload(1000, b"\xce\xba\xff"))], 1002),
    ("message over the limit", [frame(True, 0, BINARY, b"x" * (MAX + 1))], 1009),
    (
        "message over the limit across fragments",
        [frame(False, 0, TEXT, b"x" * MAX), frame(True, 0, CONT, b"x")],
        1009,
    ),
]


async def library_cases(url):
    async with websockets.connect(url, max_size=None, open_timeout=10) as ws:
        # 1.1.x, 1.2.x: text comes back as str, binary as bytes, each message whole.
        for msg in ["", "héllo ☃", "a" * 126, b"", b"\x00\xff" * 300, "€" * 333]:
            await ws.send(msg)
            echo = await asyncio.wait_for(ws.recv(), 10)
            assert type(echo) is type(msg) and echo == msg, (msg, echo)
        print("case 1.1.x 1.2.x: text as str, binary as bytes")
        # 5.3-5.5: a fragmented text message (a code point cut across fragments, 6.6.x)
        # comes back as one message.
        parts = ["frag1 ", "€"[:1], "€"[1:] + " frag3"]
        await ws.send(iter(parts))
        echo = await asyncio.wait_for(ws.recv(), 10)
        assert echo == "".join(parts), echo
        print("case 5.3 6.6.x: fragments reassembled into one message")
        # 2.3: the ping's payload comes back in its pong.
        pong = await ws.ping(b"\x00\x01payload")
        await asyncio.wait_for(pong, 10)
        print("case 2.3: pong with the ping's payload")
    assert ws.close_code == 1000, ws.close_code
    print("case 7.1.1: clean close 1000")


raw_case("7.1.6 data after close is not read",
         [frame(True, 0, TEXT, b"before"), frame(True, 0, CLOSE, close_payload(1000)),
          frame(True, 0, TEXT, b"after")],
         1000, want=[(TEXT, b"before")])
raw_case("5.6 ping inside a fragmented message",
         [frame(False, 0, TEXT, b"frag1"), frame(True, 0, PING, b"in between"),
          frame(True, 0, CONT, b"frag2")],
         None, want=[(PONG, b"in between"), (TEXT, b"frag1frag2")])
for name, frames, code in RAW_CASES:
    raw_case(name, frames, code)
asyncio.run(library_cases(f"ws://{HOST}:{PORT}{PATH}"))
print("rfc6455 ok", len(RAW_CASES) + 2 + 4)
