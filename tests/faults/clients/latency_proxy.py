"""A TCP proxy that delays every byte by a fixed time in each direction.

Stands in for `tc qdisc ... netem delay` on kernels without netem (this
project's machines): bytes keep their order and arrive `--delay` seconds
after they were read, so a peer behind it answers slower than any deadline
while its connection stays up. Runs until killed.

Usage: latency_proxy.py LISTEN_HOST LISTEN_PORT UPSTREAM_HOST UPSTREAM_PORT --delay SECONDS
"""

import argparse
import asyncio


async def pipe(reader, writer, delay):
    queue: asyncio.Queue = asyncio.Queue()
    loop = asyncio.get_running_loop()

    async def deliver():
        while True:
            due, data = await queue.get()
            if data is None:
                break
            await asyncio.sleep(max(0.0, due - loop.time()))
            writer.write(data)
            await writer.drain()
        writer.close()

    sender = asyncio.create_task(deliver())
    try:
        while data := await reader.read(65536):
            queue.put_nowait((loop.time() + delay, data))
    except (ConnectionError, OSError):
        pass
    queue.put_nowait((loop.time() + delay, None))
    try:
        await sender
    except (ConnectionError, OSError):
        pass


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("listen_host")
    parser.add_argument("listen_port", type=int)
    parser.add_argument("upstream_host")
    parser.add_argument("upstream_port", type=int)
    parser.add_argument("--delay", type=float, required=True)
    args = parser.parse_args()

    async def handle(client_reader, client_writer):
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(args.upstream_host, args.upstream_port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(pipe(client_reader, upstream_writer, args.delay),
                             pipe(upstream_reader, client_writer, args.delay))

    server = await asyncio.start_server(handle, args.listen_host, args.listen_port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
