"""A python-socketio server (aiohttp) for tests/socketio.rs: a second, independent Socket.IO
implementation. Prints {"port": N} first, then one JSON line per connection and per event.

Events: echo (emits "echo" back with the same args), ack (answers {"got": args}), ask (emits
"question" with an ack and prints {"answer": [...]}), kick (disconnects the socket).
"""
import asyncio
import base64
import json
import sys

import socketio
from aiohttp import web

sio = socketio.AsyncServer(async_mode="aiohttp", ping_interval=1, ping_timeout=1)
app = web.Application()
sio.attach(app)


def out(o):
    print(json.dumps(o, ensure_ascii=False), flush=True)


def show(a):
    return {"bin": base64.b64encode(a).decode()} if isinstance(a, (bytes, bytearray)) else a


@sio.event
async def connect(sid, environ, auth):
    out({"connected": sid, "nsp": "/", "auth": auth})


@sio.event
async def disconnect(sid, *reason):
    out({"disconnected": sid})


@sio.on("*")
async def any_event(event, sid, *args):
    out({"nsp": "/", "event": event, "args": [show(a) for a in args]})
    if event == "echo":
        await sio.emit("echo", list(args) if len(args) != 1 else args[0], to=sid)
    elif event == "ack":
        return {"got": [show(a) for a in args]}
    elif event == "ask":
        async def answered(*reply):
            out({"answer": [show(a) for a in reply]})
        await sio.emit("question", "ответ?", to=sid, callback=answered)
    elif event == "kick":
        await sio.disconnect(sid)


async def main():
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    out({"port": port})
    await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
