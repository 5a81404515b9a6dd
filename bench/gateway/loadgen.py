#!/usr/bin/env python3
"""HTTP/1.1 load generator for the gateway benchmark: POSTs one pre-encoded request over
keep-alive connections and prints a JSON report (throughput, errors, latency percentiles, its
own CPU use) on stdout.

Two modes:

* `--rate R` (open loop): requests are due at a constant rate, R per second, whatever the server
  does; a request goes out on an idle connection, or a new one when none is idle (up to
  `--max-connections`, after which it waits in a queue and the report says so). Latency is
  timed from the moment the request is written; `intended_latency_us` times it from when it was
  due instead, so client-side lateness and queueing show there.
* `--concurrency N` (closed loop): N connections, each sending its next request as soon as the
  previous answer is complete; the figure of interest is the throughput.

Runs as a process of its own so that nothing else (such as the driver's memory sampler) shares
its interpreter. Standard library only.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import json
import math
import socket
import sys
import time
from urllib.parse import urlsplit

perf = time.perf_counter


class Conn(asyncio.Protocol):
    """One keep-alive connection with at most one request in flight."""

    def __init__(self, run: "Run"):
        self.run = run
        self.transport = None
        self.buf = b""
        self.busy = False
        self.intended = 0.0
        self.sent = 0.0
        self.measured = False
        self.reusable = True

    def connection_made(self, transport):
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(self, intended: float, measured: bool) -> None:
        self.busy = True
        self.intended, self.measured = intended, measured
        self.sent = perf()
        self.transport.write(self.run.request)

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            self.buf = buf
            return
        head = buf[:end].lower()
        i = head.find(b"\r\ncontent-length:")
        if i >= 0:
            j = head.find(b"\r\n", i + 2)
            length = int(head[i + 17 : j if j >= 0 else len(head)])
            total = end + 4 + length
            if len(buf) < total:
                self.buf = buf
                return
            rest = buf[total:]
        elif b"\r\ntransfer-encoding: chunked" in head:
            total = _chunked_end(buf, end + 4)
            if total < 0:
                self.buf = buf
                return
            rest = buf[total:]
        else:
            # Neither length nor chunking: the body ends with the connection.
            self.buf = buf
            return
        done = perf()
        self.buf = rest
        status = int(buf[9:12])
        if b"\r\nconnection: close" in head:
            self.reusable = False
        self.busy = False
        self.run.completed(self, status, done, buf[end + 4 : end + 4 + 200] if status != 200 else b"")

    def connection_lost(self, exc) -> None:
        self.reusable = False
        if self.busy:
            head = self.buf[:4096].lower()
            if self.buf and b"content-length" not in head and b"chunked" not in head:
                # A body delimited by the connection's end is complete now.
                self.busy = False
                end = self.buf.find(b"\r\n\r\n")
                self.run.completed(self, int(self.buf[9:12]), perf(), self.buf[end + 4 : end + 204])
            else:
                self.busy = False
                self.run.failed(self, f"connection lost: {exc or 'closed by server'}")
        self.run.lost(self)


def _chunked_end(buf: bytes, pos: int) -> int:
    """Offset just past a complete chunked body starting at `pos`, or -1 if incomplete."""
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return -1
        size = int(buf[pos:eol].split(b";")[0], 16)
        if size == 0:
            trailer_end = buf.find(b"\r\n\r\n", eol)
            if buf[eol : eol + 4] == b"\r\n\r\n":
                return eol + 4
            return -1 if trailer_end < 0 else trailer_end + 4
        pos = eol + 2 + size + 2
        if pos > len(buf):
            return -1


class Run:
    def __init__(self, args):
        url = urlsplit(args.url)
        self.host, self.port = url.hostname, url.port or 80
        body = args.body.encode()
        self.request = (f"POST {args.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                        f"User-Agent: mlox-gateway-bench\r\nContent-Type: application/json\r\n"
                        f"Accept: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                        ).encode() + body
        self.args = args
        self.idle: collections.deque[Conn] = collections.deque()
        self.conns: set[Conn] = set()
        self.opening = 0
        self.queue: collections.deque[tuple[float, bool]] = collections.deque()
        self.latencies: list[float] = []
        self.intended_latencies: list[float] = []
        self.lateness: list[float] = []
        self.errors = 0
        self.warmup_errors = 0
        self.error_samples: list[str] = []
        self.statuses: collections.Counter[int] = collections.Counter()
        self.inflight = 0
        self.max_inflight = 0
        self.max_queue = 0
        self.queued = 0
        self.sent_total = 0
        self.opened = 0
        self.connect_errors = 0
        self.deadline = math.inf
        self.measure_from = 0.0
        self.last_done = 0.0
        self.all_done: asyncio.Future | None = None
        self.closed_loop = False

    # -- connections

    async def open_conn(self, counted: bool = False) -> Conn | None:
        """Opens a connection; `counted` when the caller already added it to `opening`."""
        loop = asyncio.get_running_loop()
        if not counted:
            self.opening += 1
        try:
            _, conn = await loop.create_connection(lambda: Conn(self), self.host, self.port)
        except OSError as e:
            self.connect_errors += 1
            self._error(f"connect: {e}", True)
            return None
        finally:
            self.opening -= 1
        self.opened += 1
        self.conns.add(conn)
        return conn

    def lost(self, conn: Conn) -> None:
        self.conns.discard(conn)
        try:
            self.idle.remove(conn)
        except ValueError:
            pass

    def grow(self) -> None:
        """Starts opening one more connection, which takes a queued request once ready."""
        self.opening += 1
        asyncio.ensure_future(self._grow())

    async def _grow(self) -> None:
        conn = await self.open_conn(counted=True)
        if conn is not None:
            self.release(conn)
        else:
            self._check_done()

    def acquire(self) -> Conn | None:
        while self.idle:
            conn = self.idle.pop()
            if conn.reusable and not conn.transport.is_closing():
                return conn
        return None

    def release(self, conn: Conn) -> None:
        if not conn.reusable or conn.transport.is_closing():
            conn.transport.close()
            self.conns.discard(conn)
            self._replace()
            return
        if self.closed_loop:
            if perf() < self.deadline:
                self._dispatch(conn, perf(), perf() >= self.measure_from)
            else:
                self._check_done()
            return
        if self.queue:
            intended, measured = self.queue.popleft()
            self._dispatch(conn, intended, measured)
        else:
            self.idle.append(conn)

    # -- requests

    def _dispatch(self, conn: Conn, intended: float, measured: bool) -> None:
        self.inflight += 1
        if self.inflight > self.max_inflight:
            self.max_inflight = self.inflight
        self.sent_total += 1
        conn.send(intended, measured)
        if measured and not self.closed_loop:
            self.lateness.append(conn.sent - intended)

    def submit(self, intended: float, measured: bool) -> None:
        conn = self.acquire()
        if conn is not None:
            self._dispatch(conn, intended, measured)
            return
        self.queue.append((intended, measured))
        self.max_queue = max(self.max_queue, len(self.queue))
        self.queued += 1
        if len(self.conns) + self.opening < self.args.max_connections:
            self.grow()

    def _error(self, message: str, measured: bool) -> None:
        if measured:
            self.errors += 1
            if len(self.error_samples) < 5:
                self.error_samples.append(message)
        else:
            self.warmup_errors += 1

    def completed(self, conn: Conn, status: int, done: float, body: bytes) -> None:
        self.inflight -= 1
        if conn.measured:
            self.statuses[status] += 1
            if status == 200:
                self.latencies.append(done - conn.sent)
                self.intended_latencies.append(done - conn.intended)
                self.last_done = max(self.last_done, done)
            else:
                self._error(f"status {status}: {body[:200].decode(errors='replace')}", True)
        elif status != 200:
            self.warmup_errors += 1
        self.release(conn)
        self._check_done()

    def failed(self, conn: Conn, message: str) -> None:
        self.inflight -= 1
        self._error(message, conn.measured)
        self.conns.discard(conn)
        self._replace()
        self._check_done()

    def _replace(self) -> None:
        """A connection is gone: a closed-loop worker gets a new one, and an open-loop queue
        one more if it has room."""
        if self.closed_loop:
            if perf() < self.deadline:
                # Counted now, not when the coroutine starts, so the run cannot look finished
                # in between.
                self.opening += 1
                asyncio.ensure_future(self._reconnect_closed())
        elif self.queue and len(self.conns) + self.opening < self.args.max_connections:
            self.grow()

    async def _reconnect_closed(self) -> None:
        conn = await self.open_conn(counted=True)
        if conn is not None:
            self.release(conn)
        else:
            self._check_done()

    def _check_done(self) -> None:
        if (self.all_done is not None and not self.all_done.done() and self.inflight == 0
                and not self.queue and self.opening == 0):
            self.all_done.set_result(None)

    # -- modes

    async def open_loop(self, rate: float, warmup: float, duration: float) -> dict:
        loop = asyncio.get_running_loop()
        # Idle connections for the expected concurrency plus timer bursts, opened before the
        # clock starts; more are opened on demand up to --max-connections.
        for _ in range(self.args.connections):
            self.opening += 1
        await asyncio.gather(*(self._grow() for _ in range(self.args.connections)))
        if not self.conns:
            raise SystemExit(f"cannot connect to {self.host}:{self.port}")
        total = int(round(rate * (warmup + duration)))
        warm_n = int(round(rate * warmup))
        interval = 1.0 / rate
        start = perf() + 0.05
        self.measure_from = start + warm_n * interval
        cpu0 = time.process_time()
        aborted_at = None
        i = 0
        while i < total:
            now = perf()
            due = start + i * interval
            if due > now:
                await asyncio.sleep(due - now)
                continue
            # Everything due by now goes out in this turn of the loop.
            while i < total and start + i * interval <= now:
                self.submit(start + i * interval, i >= warm_n)
                i += 1
            if self.queue and now - self.queue[0][0] > self.args.max_backlog:
                aborted_at = perf()
                break
            # Let answers in between bursts even when the client runs behind.
            await asyncio.sleep(0)
        sent_end = perf()
        unsent_measured = total - max(i, warm_n)
        if aborted_at is not None:
            # What waits in the queue was never sent: it counts as not sent, not as an error.
            dropped = len(self.queue)
            unsent_measured += sum(1 for _, measured in self.queue if measured)
            self.queue.clear()
        else:
            dropped = 0
        self.all_done = loop.create_future()
        self._check_done()
        try:
            await asyncio.wait_for(asyncio.shield(self.all_done), self.args.timeout)
        except asyncio.TimeoutError:
            pass
        cpu = time.process_time() - cpu0
        unanswered = self.inflight + len(self.queue)
        for _ in range(unanswered):
            self._error(f"no answer within {self.args.timeout:g}s after the last send", True)
        # A server that cannot keep up leaves the queue growing; once a request has waited
        # --max-backlog seconds for a connection the run stops sending (above) rather than
        # measure the queue for minutes. One that drains its backlog after the schedule ends
        # did not serve the rate: the window runs to its last answer.
        end_of_schedule = start + total * interval if aborted_at is None else aborted_at
        window = max(end_of_schedule, self.last_done) - self.measure_from
        report = self._report(window)
        report.update({
            "mode": "open", "target_rate": rate, "scheduled": total - warm_n,
            "send_span_s": sent_end - self.measure_from,
            "lateness_us": _summary(self.lateness),
            "max_queue": self.max_queue, "queued": self.queued, "unanswered": unanswered,
            "overloaded": aborted_at is not None,
            "overloaded_after_s": None if aborted_at is None else aborted_at - start,
            "unsent": unsent_measured, "dropped_from_queue": dropped,
            "client_cpu_s": cpu,
            "client_cpu_fraction": cpu / max(perf() - start, 1e-9),
        })
        return report

    async def closed_loop_run(self, concurrency: int, warmup: float, duration: float) -> dict:
        loop = asyncio.get_running_loop()
        self.closed_loop = True
        conns = [c for c in await asyncio.gather(*(self.open_conn() for _ in range(concurrency)))
                 if c is not None]
        if not conns:
            raise SystemExit(f"cannot connect to {self.host}:{self.port}")
        start = perf()
        self.measure_from = start + warmup
        self.deadline = self.measure_from + duration
        self.all_done = loop.create_future()
        cpu0 = time.process_time()
        for conn in conns:
            self._dispatch(conn, start, warmup <= 0)
        try:
            await asyncio.wait_for(asyncio.shield(self.all_done), duration + warmup + self.args.timeout)
        except asyncio.TimeoutError:
            pass
        cpu = time.process_time() - cpu0
        unanswered = self.inflight
        for _ in range(unanswered):
            self._error(f"no answer within {self.args.timeout:g}s after the deadline", True)
        # Answers still in flight at the deadline finish late; the window covers them.
        window = max(self.deadline, self.last_done) - self.measure_from
        report = self._report(window)
        report.update({"mode": "closed", "concurrency": concurrency, "unanswered": unanswered,
                       "client_cpu_s": cpu,
                       "client_cpu_fraction": cpu / max(perf() - start, 1e-9)})
        return report

    def _report(self, window: float) -> dict:
        ok = len(self.latencies)
        return {
            "ok": ok, "errors": self.errors, "warmup_errors": self.warmup_errors,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "error_samples": self.error_samples,
            "window_s": window, "rate": ok / window if window > 0 else 0.0,
            "latency_us": _summary(self.latencies),
            "intended_latency_us": _summary(self.intended_latencies),
            "sent_total": self.sent_total,
            "max_inflight": self.max_inflight, "connections_opened": self.opened,
            "connect_errors": self.connect_errors,
        }


def _summary(values: list[float]) -> dict | None:
    """Nearest-rank percentiles in microseconds."""
    if not values:
        return None
    v = sorted(values)
    n = len(v)

    def rank(q: float) -> float:
        return v[min(n, max(1, math.ceil(q * n))) - 1] * 1e6

    return {"n": n, "min": v[0] * 1e6, "p50": rank(0.50), "p90": rank(0.90), "p99": rank(0.99),
            "p999": rank(0.999), "max": v[-1] * 1e6, "mean": sum(v) / n * 1e6}


async def amain(args) -> dict:
    run = Run(args)
    if args.rate:
        return await run.open_loop(args.rate, args.warmup, args.duration)
    return await run.closed_loop_run(args.concurrency, args.warmup, args.duration)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", required=True, help="http://host:port of the server")
    p.add_argument("--path", required=True, help="request path, e.g. /v1/chat/completions")
    p.add_argument("--body", required=True, help="JSON body sent with every request")
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--rate", type=float, help="open loop: requests per second")
    mode.add_argument("--concurrency", type=int, help="closed loop: connections")
    p.add_argument("--duration", type=float, default=10.0, help="measured seconds")
    p.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before")
    p.add_argument("--connections", type=int, default=32,
                   help="open loop: connections opened before the clock starts")
    p.add_argument("--max-connections", type=int, default=64,
                   help="open loop: connections at most; beyond, due requests wait in a queue")
    p.add_argument("--max-backlog", type=float, default=2.0,
                   help="open loop: stop sending once a due request has waited this many "
                        "seconds for a connection (the server cannot keep up)")
    p.add_argument("--timeout", type=float, default=30.0,
                   help="how long answers are awaited after the last send")
    args = p.parse_args()
    # A collection pause would land in some request's latency; the run allocates little that
    # is cyclic, so collection waits until the end.
    gc.collect()
    gc.freeze()
    gc.disable()
    report = asyncio.run(amain(args))
    json.dump(report, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
