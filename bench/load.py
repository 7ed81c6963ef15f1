"""Closed-loop load generator: N connections, each sends a line and waits for its ack before the next.

One thread drives every connection through ``selectors`` so the generator itself stays cheap.
Prints one JSON object: acks counted in the measuring window, its length, and ack latencies.

With ``--record FILE`` (and ``--ids``) it also records every line it sends and every ack it reads in
the harness's own history (``harness.history.History``, the same two records a simulated client
makes per message, kept in memory and written to FILE, with full garbage collections held off as
while the harness drives clients): the least a client that records as the harness does pays here,
with no event loop, session, audit or checker.

    python bench/load.py --port P [--clients 200] [--warmup 1] [--duration 5] [--ids [--record FILE]]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import selectors
import socket
import statistics
import time
from pathlib import Path
from typing import Any

ACK = b"Mensaje recibido:"


def percentile(sorted_values: list[float], q: float) -> float:
    """The exact ``q`` quantile (nearest rank) of already sorted values."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, round(q * len(sorted_values) + 0.5) - 1))
    return sorted_values[k]


def thread_cpu() -> tuple[float, float]:
    """User and system CPU seconds of the calling thread (of the process where threads are not told apart)."""
    usage = resource.getrusage(getattr(resource, "RUSAGE_THREAD", resource.RUSAGE_SELF))
    return usage.ru_utime, usage.ru_stime


def run(
    host: str,
    port: int,
    clients: int,
    warmup: float,
    duration: float,
    size: int,
    ids: bool = False,
    record: Path | None = None,
) -> dict[str, object]:
    """Drive the load and measure; with ``ids`` every line is ``/id CID TEXT`` (the reference's client ids).

    ``record``: also record each send and ack in a harness history written there (needs ``ids``).
    """
    if record is not None and not ids:
        raise ValueError("recording needs ids: an ack is matched to its send by the client id")
    history: Any = None
    held = contextlib.ExitStack()
    if record is not None:
        # only here: the raw generator needs nothing of the harness
        from harness.gcpause import full_collections_held
        from harness.history import INVOKE, OK, History

        history = History(record)
        append = history.append
        held.enter_context(full_collections_held())  # as the harness holds them while it drives clients
    sel = selectors.DefaultSelector()
    conns: list[socket.socket] = []
    state: dict[int, list[object]] = {}
    pad = "x" * max(0, size - (30 if ids else 16))
    tag = os.urandom(3).hex()  # client ids never repeat across runs (the server would answer "dup")
    cpu0 = thread_cpu()

    def message(fd: int, seq: int) -> bytes:
        if not ids:
            return f"{fd} {seq} {pad}\n".encode()
        cid, text = f"{tag}.{fd}.{seq}", f"{fd} {seq} {pad}"
        if history is not None:  # what a session records as a message goes out
            append(INVOKE, "send", fd, 0, {"token": cid, "text": text, "resend": False})
            outstanding[cid] = text
        return f"/id {cid} {text}\n".encode()

    outstanding: dict[str, str] = {}

    try:
        for _ in range(clients):
            s = socket.create_connection((host, port), timeout=10)
            s.setblocking(False)
            conns.append(s)
            # socket, buffer, sent at, acks (the next line's sequence), lines sent
            state[s.fileno()] = [s, b"", 0.0, 0, 0]
        t0 = time.monotonic()
        start, end = t0 + warmup, t0 + warmup + duration
        latencies: list[float] = []
        acks = 0
        for s in conns:
            st = state[s.fileno()]
            st[2] = time.monotonic()
            s.sendall(message(s.fileno(), 0))
            st[4] = 1
            sel.register(s, selectors.EVENT_READ)
        drain = end + 5.0  # after the end, no new lines: the last one of each connection is answered first
        while True:
            now = time.monotonic()
            waiting = now >= end and sum(st[3] < st[4] for st in state.values())  # type: ignore[operator]
            if now >= drain or (now >= end and not waiting):
                break
            for key, _ in sel.select(timeout=(end if now < end else drain) - now):
                s = key.fileobj  # type: ignore[assignment]
                st = state[s.fileno()]
                try:
                    data = s.recv(65536)
                except BlockingIOError:
                    continue
                if not data:
                    raise SystemExit(f"server closed connection {s.fileno()}")
                buf = st[1] + data  # type: ignore[operator]
                *lines, st[1] = buf.split(b"\n")
                for line in lines:
                    if not line.startswith(ACK):
                        continue
                    if history is not None:  # what a session records for an ack: b"... TS id=ROW cid=CID"
                        _, _, ts, row, cid = line.decode().split(" ")
                        token = cid[4:]
                        if outstanding.pop(token, None) is None:
                            raise SystemExit(f"an ack for no outstanding line: {line!r}")
                        append(OK, "send", s.fileno(), 0, {"token": token, "row": int(row[3:]), "ts": ts, "dup": False})
                    t = time.monotonic()
                    if start <= t < end:
                        acks += 1
                        latencies.append(t - st[2])  # type: ignore[operator]
                    st[3] += 1  # type: ignore[operator]
                    st[2] = t
                    if t < end:
                        st[4] += 1  # type: ignore[operator]
                        s.sendall(message(s.fileno(), st[3]))  # type: ignore[arg-type]
        if history is not None:
            history.flush()  # its last lines, as a run's history is written whole
        cpu1 = thread_cpu()
        answered = sum(st[3] for st in state.values())  # type: ignore[misc]
        latencies.sort()
        return {
            "clients": clients,
            "acks": acks,
            "seconds": duration,
            "acks_per_s": acks / duration,
            "p50_ms": percentile(latencies, 0.50) * 1000,
            "p99_ms": percentile(latencies, 0.99) * 1000,
            "mean_ms": statistics.fmean(latencies) * 1000 if latencies else float("nan"),
            # this generator's own CPU (connecting included), per answered line: what any client costs here
            "answered": answered,
            "user_us": (cpu1[0] - cpu0[0]) * 1e6 / max(1, answered),
            "sys_us": (cpu1[1] - cpu0[1]) * 1e6 / max(1, answered),
        }
    finally:
        sel.close()
        for s in conns:
            s.close()
        if history is not None:
            history.close()
        held.close()


def main() -> None:
    """Command line."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--size", type=int, default=64, help="bytes per message")
    ap.add_argument("--ids", action="store_true", help="send /id CID TEXT lines (the reference's client ids)")
    ap.add_argument("--record", type=Path, help="also record every send and ack in a harness history written here")
    a = ap.parse_args()
    if a.record is not None and not a.ids:
        ap.error("--record needs --ids")
    print(json.dumps(run(a.host, a.port, a.clients, a.warmup, a.duration, a.size, a.ids, a.record)))


if __name__ == "__main__":
    main()
