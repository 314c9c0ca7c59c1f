#!/usr/bin/env python3
"""Opens COUNT keep-alive connections to 127.0.0.1:PORT, sends one request on each, reads the
response, and holds them all open for HOLD seconds (or until killed).

Usage: hold_conns.py PORT COUNT HOLD READY_FILE [TOKEN_FILE]

Writes "<connected> <answered_2xx>" to READY_FILE once every connection has its response, so
run.sh can read the gateway's memory while the connections are idle. Standard library only.
"""

import asyncio
import resource
import sys

PATH = "/orders/42"


async def one(port: int, token: str, gate: asyncio.Semaphore, held: list) -> bool:
    async with gate:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", port), timeout=10)
        except (OSError, asyncio.TimeoutError):
            return False
        held.append(writer)
        auth = f"Authorization: Bearer {token}\r\n" if token else ""
        writer.write(f"GET {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}\r\n".encode())
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
            status = int(head.split(b" ", 2)[1])
            length = 0
            chunked = False
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
                elif name.strip().lower() == b"transfer-encoding" and b"chunked" in value.lower():
                    chunked = True
            if chunked:
                await asyncio.wait_for(reader.readuntil(b"0\r\n\r\n"), timeout=10)
            elif length:
                await asyncio.wait_for(reader.readexactly(length), timeout=10)
        except (OSError, ValueError, IndexError, asyncio.TimeoutError,
                asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            return False
        return 200 <= status < 300


async def main() -> None:
    port, count, hold, ready = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    token = open(sys.argv[5]).read().strip() if len(sys.argv) > 5 else ""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    # Bounded concurrency while connecting, so the listen backlog never overflows.
    gate = asyncio.Semaphore(256)
    held: list = []
    results = await asyncio.gather(*(one(port, token, gate, held) for _ in range(count)))
    with open(ready, "w") as f:
        f.write(f"{len(held)} {sum(results)}\n")
    await asyncio.sleep(hold)
    for writer in held:
        writer.close()


if __name__ == "__main__":
    asyncio.run(main())
