#!/usr/bin/env python3
"""A TCP relay that holds every chunk for a fixed delay in each direction.

Stands in for `tc qdisc add dev lo root netem delay D` where the kernel has no
netem (the VMs here lack sch_netem): bytes keep their order and the link keeps
its throughput; only latency is added.

    scripts/delay-proxy.py --listen 127.0.0.1:50552 --to 127.0.0.1:50551 --delay-ms 20
"""
import argparse
import asyncio
import time


async def pump(reader, writer, delay):
    queue = asyncio.Queue()

    async def read_side():
        while True:
            chunk = await reader.read(1 << 20)
            await queue.put((time.monotonic() + delay, chunk))
            if not chunk:
                return

    async def write_side():
        while True:
            due, chunk = await queue.get()
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if not chunk:
                writer.close()
                return
            writer.write(chunk)
            await writer.drain()

    try:
        await asyncio.gather(read_side(), write_side())
    except (ConnectionError, asyncio.IncompleteReadError):
        writer.close()


def split_address(text):
    host, port = text.rsplit(":", 1)
    return host, int(port)


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True, help="HOST:PORT to accept on")
    parser.add_argument("--to", required=True, help="HOST:PORT to relay to")
    parser.add_argument("--delay-ms", type=float, required=True, help="added one-way latency")
    args = parser.parse_args()
    delay = args.delay_ms / 1000.0
    target = split_address(args.to)

    async def handle(client_reader, client_writer):
        server_reader, server_writer = await asyncio.open_connection(*target)
        await asyncio.gather(
            pump(client_reader, server_writer, delay),
            pump(server_reader, client_writer, delay),
        )

    server = await asyncio.start_server(handle, *split_address(args.listen))
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
