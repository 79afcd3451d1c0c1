#!/usr/bin/env python3
"""A TCP relay that adds a fixed one-way delay to every byte in both
directions, so a loopback bench can have a wide-area round trip on one
leg (tests/bench/early_dial.sh). Each connection is dialled onward when
it arrives; its bytes are forwarded in order, each chunk DELAY_MS after it
was read (a round trip through the relay costs 2 x DELAY_MS). Loopback
only; stops on SIGTERM.
  delay_relay.py LISTEN_PORT TARGET_PORT DELAY_MS"""

import asyncio
import signal
import sys


async def pipe(reader, writer, delay):
    loop = asyncio.get_running_loop()
    q = asyncio.Queue()

    async def pump_out():
        while True:
            due, data = await q.get()
            if data is None:
                break
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
        writer.close()

    out = asyncio.ensure_future(pump_out())
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            q.put_nowait((loop.time() + delay, data))
    except ConnectionError:
        pass
    q.put_nowait((loop.time() + delay, None))
    try:
        await out
    except ConnectionError:
        pass


async def main():
    listen, target, delay = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]) / 1000

    async def serve(cr, cw):
        try:
            ur, uw = await asyncio.open_connection("127.0.0.1", target)
        except OSError:
            cw.close()
            return
        await asyncio.gather(pipe(cr, uw, delay), pipe(ur, cw, delay))

    server = await asyncio.start_server(serve, "127.0.0.1", listen, backlog=1024)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
