"""A Python `websockets` client for the reverse-proxy tests (tests/proxy_nginx.rs).

Usage: proxy_client.py URL [--ca CA_FILE] [--local IP] [--origin ORIGIN]
                           [--header NAME VALUE] [--idle SECONDS]
Connects (from local address IP when given), sends "hello" and expects it echoed; with --idle
stays silent that long (it answers pings but sends none), then sends "after" and expects it
echoed. Prints one line per step: "OPEN", "ECHO <text>", "CLOSED <code>" when the connection
ended instead, "REFUSED <HTTP status>" when the handshake was refused; "OK" last on success.
Gives up after 30 s.
"""
import asyncio
import ssl
import sys

import websockets


async def main():
    url = sys.argv[1]
    args = sys.argv[2:]
    ctx, local, origin, idle, headers = None, None, None, 0.0, {}
    while args:
        a = args.pop(0)
        if a == "--ca":
            ctx = ssl.create_default_context(cafile=args.pop(0))
        elif a == "--local":
            local = (args.pop(0), 0)
        elif a == "--origin":
            origin = args.pop(0)
        elif a == "--header":
            name = args.pop(0)
            headers[name] = args.pop(0)
        elif a == "--idle":
            idle = float(args.pop(0))
    extra = {"local_addr": local} if local else {}
    try:
        ws = await websockets.connect(url, ssl=ctx, origin=origin, additional_headers=headers,
                                      ping_interval=None, open_timeout=10, **extra)
    except websockets.exceptions.InvalidStatus as e:
        print(f"REFUSED {e.response.status_code}", flush=True)
        return
    print("OPEN", flush=True)
    try:
        for text, pause in (("hello", 0), ("after", idle)):
            if pause == 0 and text == "after":
                break
            await asyncio.sleep(pause)
            await ws.send(text)
            print(f"ECHO {await ws.recv()}", flush=True)
        await ws.close(1000, "done")
        print("OK", flush=True)
    except websockets.exceptions.ConnectionClosed as e:
        code = e.rcvd.code if e.rcvd else 1006
        print(f"CLOSED {code}", flush=True)


try:
    asyncio.run(asyncio.wait_for(main(), 30))
except Exception as e:  # noqa: BLE001 - any failure is the test's answer
    print(f"ERROR {type(e).__name__}: {e}", flush=True)
    sys.exit(1)
