"""Interop peer for tests/interop.rs (Python `websockets`), as a client or as a server.

  interop.py client URL CLOSE_BY [--ca CA_FILE]
      Sends a Cyrillic text, a 100 KB text and binary bytes, expects each echoed back
      unchanged (text as text, binary as binary), pings with "ping-1" and expects the pong,
      stays 400 ms (so the server's own pings get their pongs), then closes: CLOSE_BY=client
      closes with 4000 "клиент: готово"; CLOSE_BY=server sends "закрой меня" and waits for
      the server's close. Prints "CLOSED <code> <reason>" (the close frame received) and
      "OK" last; "ERROR ..." and exit 1 on any problem. Gives up after 20 s.
  interop.py server [--tls CERT KEY]
      Echoes every message; on the text "закрой меня" closes with 4001 "сервер: пока".
      Prints "PORT <n>" once listening on 127.0.0.1:0, then "CLOSED <code> <reason>" per
      connection (the close frame received). Exits when its stdin closes.
"""
import asyncio
import os
import ssl
import sys
import threading

import websockets

TEXTS = ["Привет, сервер! Ёё", "Ж" * 50_000]
BINARY = bytes([0, 1, 2, 127, 128, 254, 255])


def say(line):
    print(line, flush=True)


async def client(url, close_by, ca):
    ctx = ssl.create_default_context(cafile=ca) if ca else None
    async with websockets.connect(url, ssl=ctx, max_size=64 << 20, ping_interval=None) as ws:
        for m in TEXTS + [BINARY]:
            await ws.send(m)
            got = await ws.recv()
            if got != m or type(got) is not type(m):
                raise RuntimeError(f"echo mismatch: sent {m!r:.40} got {got!r:.40}")
        latency = await asyncio.wait_for(await ws.ping(b"ping-1"), 5)
        say("PONG true" if latency >= 0 else "PONG false")
        await asyncio.sleep(0.4)
        if close_by == "client":
            await ws.close(4000, "клиент: готово")
        else:
            await ws.send("закрой меня")
            await ws.wait_closed()
        say(f"CLOSED {ws.close_code} {ws.close_reason}")


async def server(tls):
    ctx = None
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(tls[0], tls[1])

    async def handler(ws):
        try:
            async for msg in ws:
                if msg == "закрой меня":
                    await ws.close(4001, "сервер: пока")
                    break
                await ws.send(msg)
        except websockets.ConnectionClosed:
            pass
        await ws.wait_closed()
        say(f"CLOSED {ws.close_code} {ws.close_reason}")

    async with websockets.serve(handler, "127.0.0.1", 0, ssl=ctx, max_size=64 << 20,
                                ping_interval=None) as srv:
        say(f"PORT {srv.sockets[0].getsockname()[1]}")
        await asyncio.Future()


def stdin_watchdog():
    sys.stdin.read()
    os._exit(0)


def main():
    args = sys.argv[1:]
    if args[0] == "client":
        ca = args[args.index("--ca") + 1] if "--ca" in args else None
        try:
            asyncio.run(asyncio.wait_for(client(args[1], args[2], ca), 20))
        except Exception as e:  # noqa: BLE001 - any failure is the test's answer
            say(f"ERROR {type(e).__name__}: {e}")
            sys.exit(1)
        say("OK")
    else:
        tls = args[args.index("--tls") + 1:][:2] if "--tls" in args else None
        threading.Thread(target=stdin_watchdog, daemon=True).start()
        asyncio.run(server(tls))


main()
