# tcp_echo: C clients send 1 KiB messages to an echo server (asyncio
# streams) in the same process, each waiting for its echo before the next,
# for S seconds; reports round trips per second. PY_LOOP=uvloop runs the
# same script on uvloop.
#   usage: python3 bench/peers/tcp_echo/python.py [C=64] [S=10] [SIZE=1024]
import asyncio, os, sys, time
PEER = "python-uvloop" if os.environ.get("PY_LOOP") == "uvloop" else "python"
if PEER == "python-uvloop":
    import uvloop; uvloop.install()

C = int(sys.argv[1]) if len(sys.argv) > 1 else 64
S = float(sys.argv[2]) if len(sys.argv) > 2 else 10
SIZE = int(sys.argv[3]) if len(sys.argv) > 3 else 1024

async def echo(reader, writer):
    while True:
        data = await reader.read(65536)
        if not data:
            break
        writer.write(data)
        await writer.drain()
    writer.close()

async def main():
    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    msg = b"x" * SIZE
    running = True

    async def client():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        n = 0
        while running:
            writer.write(msg)
            await writer.drain()
            assert await reader.readexactly(SIZE) == msg
            n += 1
        writer.close()
        return n

    t0 = time.perf_counter()
    tasks = [asyncio.create_task(client()) for _ in range(C)]
    await asyncio.sleep(S)
    running = False
    counts = await asyncio.gather(*tasks)
    wall = time.perf_counter() - t0
    server.close()
    total = sum(counts)
    print(f"RESULT workload=tcp_echo peer={PEER} n={total} wall_s={wall:.4f} "
          f"conc={C} size={SIZE} msgs_per_s={total / wall:.0f}")

asyncio.run(main())
