#!/usr/bin/python3
"""delayproxy.py - a TCP proxy on 127.0.0.1 that adds latency to server replies.

Client -> server bytes are forwarded at once; every chunk the server sends is
held for DELAY ms (counted from when the proxy read it) and then passed to the
client, in order. Chunks are delayed independently (a pipe with latency, not
a slow link), so a client that pipelines its commands pays the delay once per
round trip, and one that waits for each reply pays it once per command.

usage: delayproxy.py --listen PORT --target PORT [--delay-ms 10] [--stats FILE]
Listens and connects on 127.0.0.1 only. Stops on SIGTERM/SIGINT, or after
--max-seconds (default 3600) as a safety net.

--stats FILE: when a connection ends, appends {"s2c_chunks", "c2s_chunks",
"s2c_bytes", "c2s_bytes", "seconds"} as a JSON line. A client that waits for
each reply makes the server answer in separate bursts, so s2c_chunks counts
the round trips it paid (greeting, EHLO and QUIT included).
"""
import argparse
import asyncio
import json
import signal
import socket
import sys

HOST = "127.0.0.1"


async def pump_now(reader, writer, st):
    """Client -> server: forward immediately."""
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            st["c2s_chunks"] += 1
            st["c2s_bytes"] += len(data)
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        try:
            if writer.can_write_eof():
                writer.write_eof()
        except (ConnectionError, OSError, RuntimeError):
            pass


async def pump_delayed(reader, writer, delay, st):
    """Server -> client: each chunk leaves `delay` seconds after it arrived."""
    loop = asyncio.get_running_loop()
    queue = asyncio.Queue()

    async def read_side():
        try:
            while True:
                data = await reader.read(65536)
                if data:
                    st["s2c_chunks"] += 1
                    st["s2c_bytes"] += len(data)
                queue.put_nowait((loop.time() + delay, data))
                if not data:
                    break
        except (ConnectionError, OSError):
            queue.put_nowait((loop.time() + delay, b""))

    async def write_side():
        try:
            while True:
                due, data = await queue.get()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            try:
                writer.close()
            except (ConnectionError, OSError, RuntimeError):
                pass

    await asyncio.gather(read_side(), write_side())


async def handle(client_r, client_w, target, delay, stats_path):
    try:
        server_r, server_w = await asyncio.wait_for(
            asyncio.open_connection(HOST, target), timeout=5)
    except (OSError, asyncio.TimeoutError):
        client_w.close()
        return
    for w in (client_w, server_w):
        sock = w.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    st = {"s2c_chunks": 0, "c2s_chunks": 0, "s2c_bytes": 0, "c2s_bytes": 0}
    t0 = asyncio.get_running_loop().time()
    try:
        await asyncio.gather(pump_now(client_r, server_w, st),
                             pump_delayed(server_r, client_w, delay, st))
    finally:
        if stats_path:
            st["seconds"] = round(asyncio.get_running_loop().time() - t0, 4)
            with open(stats_path, "a") as f:
                f.write(json.dumps(st) + "\n")
        for w in (client_w, server_w):
            try:
                w.close()
            except (ConnectionError, OSError, RuntimeError):
                pass


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", type=int, required=True)
    ap.add_argument("--target", type=int, required=True)
    ap.add_argument("--delay-ms", type=float, default=10.0)
    ap.add_argument("--stats")
    ap.add_argument("--max-seconds", type=float, default=3600.0)
    a = ap.parse_args()
    delay = a.delay_ms / 1000.0

    server = await asyncio.start_server(
        lambda r, w: handle(r, w, a.target, delay, a.stats), HOST, a.listen, backlog=128)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await asyncio.wait_for(stop.wait(), timeout=a.max_seconds)
    except asyncio.TimeoutError:
        print("delayproxy: --max-seconds reached, stopping", file=sys.stderr)
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
