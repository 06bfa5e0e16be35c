"""A real WebSocket peer for the host tests (Python `websockets`).

Usage: ws_peer.py MODE [--tls CERT KEY]
  echo            echo every message back (text stays text, binary stays binary)
  flood N         on open send N numbered texts "0".."N-1", then wait for the client
  headers         on open send the request headers as a JSON object
  close CODE      on the first message, close with CODE and reason "bye"
Prints "PORT <n>" once listening on 127.0.0.1:0; exits when its stdin closes, so it never
outlives the test that started it.
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
    ctx = None
    if "--tls" in sys.argv:
        i = sys.argv.index("--tls")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(sys.argv[i + 1], sys.argv[i + 2])

    async def handler(ws):
        try:
            if mode == "echo":
                async for msg in ws:
                    await ws.send(msg)
            elif mode == "flood":
                for i in range(int(arg)):
                    await ws.send(str(i))
                await ws.wait_closed()
            elif mode == "headers":
                import json
                await ws.send(json.dumps(dict(ws.request.headers)))
                await ws.wait_closed()
            elif mode == "close":
                await ws.recv()
                await ws.close(int(arg), "bye")
        except websockets.ConnectionClosed:
            pass

    async with websockets.serve(handler, "127.0.0.1", 0, ssl=ctx, max_size=64 << 20,
                                ping_interval=None) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"PORT {port}", flush=True)
        await asyncio.Future()


threading.Thread(target=stdin_watchdog, daemon=True).start()
asyncio.run(main())
