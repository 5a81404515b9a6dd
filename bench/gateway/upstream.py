#!/usr/bin/env python3
"""A fast stand-in for an OpenAI-compatible provider: every POST gets one canned
`chat.completion`, GET /stats the number of POSTs answered and of connections accepted, any
other request a small JSON.

The gateway benchmark subtracts this server's own latency from the gateway's, so it has to be
cheap per request and must not become the bottleneck: the answers are encoded once at start-up
and requests are parsed no further than their head and Content-Length. HTTP/1.1 keep-alive and
pipelined requests are honoured; `Connection: close` (and HTTP/1.0 without keep-alive) closes
after the answer. Chunked request bodies are not supported (neither gateway sends them); such a
request is answered 501 and the connection closed, so the benchmark counts an error rather than
hanging.

Standard library only. Prints `listening <port>` on stdout once it accepts connections.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import socket
import sys

# What a provider answers to a short chat request; the size is that of a real short answer so
# neither gateway gets an unrealistically cheap body to decode and re-encode.
CHAT_COMPLETION = {
    "id": "chatcmpl-bench0000000000000000000000001",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [{
        "index": 0,
        "message": {"role": "assistant", "content": "Hello! How can I help you today?",
                    "refusal": None},
        "logprobs": None,
        "finish_reason": "stop",
    }],
    "usage": {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21},
    "system_fingerprint": "fp_bench",
}


def _response(status: str, body: bytes, close: bool = False) -> bytes:
    head = (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n")
    if close:
        head += "Connection: close\r\n"
    return head.encode() + b"\r\n" + body


CHAT = _response("200 OK", json.dumps(CHAT_COMPLETION, separators=(",", ":")).encode())
CHAT_CLOSE = _response("200 OK", json.dumps(CHAT_COMPLETION, separators=(",", ":")).encode(), True)
HEALTH = _response("200 OK", b'{"status":"OK"}')
NOT_IMPLEMENTED = _response("501 Not Implemented",
                            b'{"error":{"message":"chunked bodies are not supported"}}', True)
BAD_REQUEST = _response("400 Bad Request", b'{"error":{"message":"malformed request"}}', True)
# A request head larger than this is not something either gateway sends; refuse it rather
# than buffer without bound.
MAX_HEAD = 64 * 1024

served = 0
accepted = 0


class Handler(asyncio.Protocol):
    __slots__ = ("transport", "buf")

    def connection_made(self, transport):
        global accepted
        accepted += 1
        self.transport = transport
        self.buf = b""
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        global served
        buf = self.buf + data if self.buf else data
        out = []
        close = False
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD:
                    out.append(BAD_REQUEST)
                    close = True
                    buf = b""
                break
            head = buf[:end].lower()
            length = 0
            i = head.find(b"\r\ncontent-length:")
            if i >= 0:
                j = head.find(b"\r\n", i + 2)
                try:
                    length = int(head[i + 17 : j if j >= 0 else len(head)])
                except ValueError:
                    out.append(BAD_REQUEST)
                    close = True
                    buf = b""
                    break
            elif b"\r\ntransfer-encoding:" in head:
                out.append(NOT_IMPLEMENTED)
                close = True
                buf = b""
                break
            total = end + 4 + length
            if len(buf) < total:
                break
            line_end = head.find(b"\r\n")
            request_line = head[:line_end if line_end >= 0 else len(head)]
            wants_close = (b"\r\nconnection: close" in head
                           or (request_line.endswith(b"http/1.0")
                               and b"\r\nconnection: keep-alive" not in head))
            if request_line.startswith(b"post "):
                served += 1
                out.append(CHAT_CLOSE if wants_close else CHAT)
            elif request_line.startswith(b"get /stats"):
                body = json.dumps({"requests": served, "connections": accepted}).encode()
                out.append(_response("200 OK", body, wants_close))
            else:
                out.append(HEALTH)
            buf = buf[total:]
            if wants_close:
                close = True
                buf = b""
                break
        self.buf = buf
        if out:
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))
        if close:
            self.transport.close()

    def connection_lost(self, exc) -> None:
        self.buf = b""


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Handler, host, port, backlog=4096, reuse_address=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    bound = server.sockets[0].getsockname()[1]
    print(f"listening {bound}", flush=True)
    async with server:
        await stop.wait()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port (printed on stdout)")
    args = p.parse_args()
    asyncio.run(serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
