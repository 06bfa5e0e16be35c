"""A real WebSocket client for the host tests (Python `websockets`).

Usage: ws_client.py URL [--ca CA_FILE] [--header NAME VALUE] [--subprotocol P]
Sends "hello", "Привет, сервер", a 100 KB text and the bytes 00 01 02 FF, expects each echoed
back unchanged (text as text, binary as binary), closes with 4000 "done", prints "OK" and
exits 0; prints the problem and exits 1 otherwise. Gives up after 20 s.
"""
import asyncio
import ssl
import sys

import websockets


async def main():
    url = sys.argv[1]
    ctx = None
    headers = {}
    subprotocols = None
    args = sys.argv[2:]
    while args:
        a = args.pop(0)
        if a == "--ca":
            ctx = ssl.create_default_context(cafile=args.pop(0))
        elif a == "--header":
            headers[args.pop(0)] = args.pop(0)
        elif a == "--subprotocol":
            subprotocols = [args.pop(0)]
    msgs = ["hello", "Привет, сервер", "x" * 100_000, bytes([0, 1, 2, 255])]
    async with websockets.connect(url, ssl=ctx, additional_headers=headers,
                                  subprotocols=subprotocols, max_size=64 << 20) as ws:
        for m in msgs:
            await ws.send(m)
            got = await ws.recv()
            if got != m or type(got) is not type(m):
                print(f"MISMATCH sent {m!r:.40} got {got!r:.40}", flush=True)
                sys.exit(1)
        await ws.close(4000, "done")
    print("OK", flush=True)


try:
    asyncio.run(asyncio.wait_for(main(), 20))
except Exception as e:  # noqa: BLE001 - any failure is the test's answer
    print(f"ERROR {type(e).__name__}: {e}", flush=True)
    sys.exit(1)
