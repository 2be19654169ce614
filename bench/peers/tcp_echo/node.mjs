// tcp_echo: C clients send 1 KiB messages to an echo server (net) in the
// same process, each waiting for its whole echo before the next, for S
// seconds; reports round trips per second.
//   usage: node bench/peers/tcp_echo/node.mjs [C=64] [S=10] [SIZE=1024]
import net from "node:net";

const C = Number(process.argv[2] ?? 64);
const S = Number(process.argv[3] ?? 10);
const SIZE = Number(process.argv[4] ?? 1024);
const msg = Buffer.alloc(SIZE, "x");

const server = net.createServer((sock) => {
  sock.setNoDelay(true);
  sock.on("data", (d) => sock.write(d));
  sock.on("error", () => {});
});

server.listen(0, "127.0.0.1", () => {
  const port = server.address().port;
  let running = true, total = 0, open = C;
  const t0 = performance.now();
  for (let i = 0; i < C; i++) {
    const c = net.connect(port, "127.0.0.1", () => {
      c.setNoDelay(true);
      c.write(msg);
    });
    let got = 0;
    c.on("data", (d) => {
      got += d.length;
      if (got < SIZE) return;
      if (got > SIZE) throw new Error("more than one echo");
      got = 0;
      total++;
      if (running) c.write(msg);
      else c.end();
    });
    c.on("close", () => {
      if (--open === 0) {
        const wall = (performance.now() - t0) / 1000;
        server.close();
        console.log(`RESULT workload=tcp_echo peer=node n=${total} ` +
          `wall_s=${wall.toFixed(4)} conc=${C} size=${SIZE} ` +
          `msgs_per_s=${Math.round(total / wall)}`);
      }
    });
  }
  setTimeout(() => { running = false; }, S * 1000);
});
