"""A real WebSocket peer for the host tests (Python `websockets`).

Usage: ws_peer.py MODE [ARG] [--tls CERT KEY] [--client-ca CA] [--port N]
                  [--subprotocols A,B] [--tag T]
  echo            echo every message back (text stays text, binary stays binary)
  flood N         on open send N numbered texts "0".."N-1" ("T:0".. with --tag T), then
                  wait for the client
  headers         on open send the request headers, the chosen subprotocol (key
                  "_subprotocol") and the request path with query ("_path") as JSON
  close CODE      on the first message, close with CODE and reason "bye"
  freeze          on open send "frozen", then stop reading (so pings go unanswered) and
                  keep the socket open
  slow MS         a slow but steady reader: take a message, sleep MS ms, answer with the
                  count of messages taken so far
--client-ca CA    TLS only: require a client certificate signed by CA
--keepalive       ping the client every 200 ms, drop it (1011) if a pong is 500 ms late
--host H        listen on H instead of 127.0.0.1 (for example ::1)
--response-header NAME:VALUE
                  add this header to the handshake response (may be repeated)
Prints "PORT <n>" once listening on 127.0.0.1 (port 0 unless --port); exits when its stdin
closes, so it never outlives the test that started it.
"""
import asyncio
import os
import ssl
import sys
import threading

import websockets


def stdin_watchdog():
    sys.stdin.read()
    os._exit(0)


async def main():
    mode = sys.argv[1]
    arg = sys.argv[2] if len(sys.argv) > 2 and not sys.argv[2].startswith("--") else None
    def opt(name):
        return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else None

    ctx = None
    if "--tls" in sys.argv:
        i = sys.argv.index("--tls")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(sys.argv[i + 1], sys.argv[i + 2])
        if opt("--client-ca"):
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(opt("--client-ca"))
    port = int(opt("--port") or 0)
    tag = opt("--tag")
    subprotocols = opt("--subprotocols").split(",") if opt("--subprotocols") else None

    async def handler(ws):
        try:
            if mode == "echo":
                async for msg in ws:
                    await ws.send(msg)
            elif mode == "flood":
                for i in range(int(arg)):
                    await ws.send(f"{tag}:{i}" if tag else str(i))
                await ws.wait_closed()
            elif mode == "headers":
                import json
                seen = dict(ws.request.headers)
                seen["_subprotocol"] = ws.subprotocol or ""
                seen["_path"] = ws.request.path
                await ws.send(json.dumps(seen))
                await ws.wait_closed()
            elif mode == "close":
                await ws.recv()
                await ws.close(int(arg), "bye")
            elif mode == "slow":
                n = 0
                async for _ in ws:
                    await asyncio.sleep(int(arg) / 1000)
                    n += 1
                    await ws.send(str(n))
            elif mode == "freeze":
                await ws.send("frozen")
                ws.transport.pause_reading()
                await asyncio.Future()
        except websockets.ConnectionClosed:
            pass

    extra = [sys.argv[i + 1].split(":", 1) for i, a in enumerate(sys.argv)
             if a == "--response-header"]

    def process_response(connection, request, response):
        for name, value in extra:
            response.headers[name] = value
        return response

    async with websockets.serve(handler, opt("--host") or "127.0.0.1", port,
                                process_response=process_response if extra else None, ssl=ctx, max_size=64 << 20,
                                ping_interval=0.2 if "--keepalive" in sys.argv else None,
                                ping_timeout=0.5, subprotocols=subprotocols,
                                # slow: read a message at a time, so the pace is steady.
                                max_queue=1 if mode == "slow" else 16) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"PORT {port}", flush=True)
        await asyncio.Future()


threading.Thread(target=stdin_watchdog, daemon=True).start()
asyncio.run(main())
