#!/usr/bin/env python3
"""spec/support/http_server.py: the HTTP test server of loom's specs.

Python 3's standard library only. Listens on 127.0.0.1 on a free port
(printed first, as "PORT <n> PID <pid> SILENT <m>"; on port m a listener
accepts connections and never sends a byte), keeps connections alive
(protocol_version HTTP/1.1; every response has a length) and takes a
backlog of 128, so 64 concurrent requests do not stall. It exits by
itself when the process that started it goes away, or after --lifetime
seconds, so a crashed spec never leaves it running.

Routes (query strings as noted):
  /hello                 "hello"
  /status/<code>         that status, body "status <code>"
  /delay/<s>             waits s seconds, then "slept"
  /echo                  any method: JSON of method, path, query, headers
                         (lower-case names, repeats joined), body, the
                         client's port (one per connection) and proxied
  /redirect/<code>?to=U  that status with Location: U (default /echo)
  /loop                  302 to itself
  /counted/<key>         302 to /hello, counting its hits: /hits/<key>
  /large/<n>             n bytes with a Content-Length
  /chunked/<n>           n bytes in chunked encoding
  /drop                  promises 100000 bytes, sends 1000, closes
  /drip?n=&every=        n bytes, one every 'every' seconds
  /gzip                  a gzip-encoded text (Content-Encoding: gzip)
  /bomb                  256 MiB of zeros gzip-encoded (about 250 KiB)
  /stream/<n>            n bytes, written in 64 KiB pieces
  /gzip-stream/<n>       n compressible bytes, gzip-encoded, chunked
  /cookie/set?k=v        Set-Cookie: k=v
  /cookies               JSON of the Cookie header
  /multi                 repeated headers (two Set-Cookie, two X-Multi)
  /big-headers           a 300 KB header
  /close-soon            a response, then the server closes the idle
                         connection 0.1 s later
  /early-hints           a 103 block before the 200
  absolute URIs          forwarded (a minimal HTTP proxy), X-Proxied: 1
"""
import gzip
import http.client
import json
import os
import socket
import sys
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

BOMB = None
BOMB_LOCK = threading.Lock()
HITS = {}
HITS_LOCK = threading.Lock()


def bomb():
    global BOMB
    with BOMB_LOCK:
        if BOMB is None:
            c = zlib.compressobj(9, zlib.DEFLATED, 31)
            block = b"\0" * (1 << 20)
            parts = [c.compress(block) for _ in range(256)]
            parts.append(c.flush())
            BOMB = b"".join(parts)
        return BOMB


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "loom-test"

    def log_message(self, *args):
        pass

    def reply(self, code, body=b"", headers=()):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def body(self):
        try:
            return self.read_body()
        except (ValueError, OSError):  # the client gave up mid-body
            self.close_connection = True
            return b""

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = []
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                out.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(out)
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def proxy(self):
        u = urlsplit(self.path)
        data = self.body()
        conn = http.client.HTTPConnection(u.hostname, u.port or 80,
                                          timeout=10)
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in ("proxy-connection", "connection")}
        headers["X-Proxied"] = "1"
        conn.request(self.command, u.path + ("?" + u.query if u.query
                                             else ""), data, headers)
        r = conn.getresponse()
        payload = r.read()
        self.reply(r.status, payload,
                   [(k, v) for k, v in r.getheaders()
                    if k.lower() not in ("content-length", "connection",
                                         "transfer-encoding")])
        conn.close()

    def handle_any(self):
        if self.path.startswith("http://"):
            return self.proxy()
        u = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(u.query).items()}
        parts = u.path.strip("/").split("/")
        route, arg = parts[0], parts[1] if len(parts) > 1 else None
        fn = getattr(self, "r_" + route.replace("-", "_"), None)
        if fn is None:
            data = self.body()
            return self.reply(404, "no route " + u.path)
        return fn(arg, q)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any
    do_HEAD = do_OPTIONS = do_PROPFIND = handle_any

    def r_hello(self, arg, q):
        self.reply(200, "hello", [("Content-Type", "text/plain")])

    def r_status(self, arg, q):
        self.body()
        self.reply(int(arg), "status " + arg)

    def r_delay(self, arg, q):
        time.sleep(float(arg))
        self.reply(200, "slept")

    def r_echo(self, arg, q):
        data = self.body()
        headers = {}
        for k, v in self.headers.items():
            k = k.lower()
            headers[k] = headers[k] + ", " + v if k in headers else v
        out = {"method": self.command, "path": self.path, "query": q,
               "headers": headers, "body": data.decode("latin-1"),
               "port": self.client_address[1]}
        self.reply(200, json.dumps(out),
                   [("Content-Type", "application/json")])

    def r_redirect(self, arg, q):
        self.body()
        self.reply(int(arg), "", [("Location", q.get("to", "/echo"))])

    def r_counted(self, arg, q):
        self.body()
        with HITS_LOCK:
            HITS[arg] = HITS.get(arg, 0) + 1
        self.reply(302, "", [("Location", "/hello")])

    def r_hits(self, arg, q):
        with HITS_LOCK:
            n = HITS.get(arg, 0)
        self.reply(200, str(n))

    def r_loop(self, arg, q):
        self.reply(302, "", [("Location", "/loop")])

    def r_large(self, arg, q):
        self.reply(200, b"x" * int(arg))

    def r_chunked(self, arg, q):
        n = int(arg)
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        while n > 0:
            k = min(n, 1000)
            self.wfile.write(b"%x\r\n%s\r\n" % (k, b"y" * k))
            n -= k
        self.wfile.write(b"0\r\n\r\n")

    def r_drop(self, arg, q):
        self.send_response(200)
        self.send_header("Content-Length", "100000")
        self.end_headers()
        self.wfile.write(b"z" * 1000)
        self.wfile.flush()
        self.connection.shutdown(socket.SHUT_RDWR)
        self.close_connection = True

    def r_drip(self, arg, q):
        n, every = int(q.get("n", "5")), float(q.get("every", "0.1"))
        self.send_response(200)
        self.send_header("Content-Length", str(n))
        self.end_headers()
        for _ in range(n):
            self.wfile.write(b"d")
            self.wfile.flush()
            time.sleep(every)

    def r_gzip(self, arg, q):
        text = ("loom " * 2000).encode()
        self.reply(200, gzip.compress(text),
                   [("Content-Encoding", "gzip"),
                    ("Content-Type", "text/plain")])

    def r_bomb(self, arg, q):
        self.reply(200, bomb(), [("Content-Encoding", "gzip")])

    def r_stream(self, arg, q):
        n = int(arg)
        piece = b"s" * 65536
        self.send_response(200)
        self.send_header("Content-Length", str(n))
        self.end_headers()
        try:
            while n > 0:
                k = min(n, len(piece))
                self.wfile.write(piece[:k])
                n -= k
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def r_gzip_stream(self, arg, q):
        n = int(arg)
        c = zlib.compressobj(6, zlib.DEFLATED, 31)
        piece = bytes(range(256)) * 256
        self.send_response(200)
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            while n > 0:
                k = min(n, len(piece))
                out = c.compress(piece[:k])
                n -= k
                if out:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(out), out))
            out = c.flush()
            self.wfile.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(out), out))
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def r_cookie(self, arg, q):
        cookies = [("Set-Cookie", "%s=%s; Path=/" % kv) for kv in q.items()]
        self.reply(200, "set", cookies)

    def r_cookies(self, arg, q):
        self.reply(200, json.dumps({"cookie": self.headers.get("Cookie")}),
                   [("Content-Type", "application/json")])

    def r_multi(self, arg, q):
        self.reply(200, "multi", [("Set-Cookie", "a=1, b; Path=/"),
                                  ("Set-Cookie", "c=3"),
                                  ("X-Multi", "one"), ("X-Multi", "two")])

    def r_big_headers(self, arg, q):
        self.reply(200, "big", [("X-Big", "b" * 300000)])

    def r_close_soon(self, arg, q):
        self.reply(200, "soon")
        conn = self.connection

        def close():
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        threading.Timer(0.1, close).start()

    def r_early_hints(self, arg, q):
        self.wfile.write(b"HTTP/1.1 103 Early Hints\r\n"
                         b"Link: </style.css>; rel=preload\r\n\r\n")
        self.reply(200, "after hints", [("X-Final", "yes")])


class Server(ThreadingHTTPServer):
    request_queue_size = 128
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        # a client that went away (cancelled, timed out) is no error here
        if not isinstance(sys.exc_info()[1], (ConnectionError, OSError)):
            super().handle_error(request, client_address)


def watchdog(ppid, lifetime):
    t0 = time.monotonic()
    while True:
        time.sleep(0.5)
        if os.getppid() != ppid or time.monotonic() - t0 > lifetime:
            os._exit(0)


def silent(sock):
    held = []
    while True:
        conn, _ = sock.accept()
        held.append(conn)  # kept open, never answered


def main():
    lifetime = 600.0
    if "--lifetime" in sys.argv:
        lifetime = float(sys.argv[sys.argv.index("--lifetime") + 1])
    srv = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=watchdog, args=(os.getppid(), lifetime),
                     daemon=True).start()
    quiet = socket.socket()
    quiet.bind(("127.0.0.1", 0))
    quiet.listen(128)
    threading.Thread(target=silent, args=(quiet,), daemon=True).start()
    print("PORT %d PID %d SILENT %d" % (srv.server_address[1], os.getpid(),
                                       quiet.getsockname()[1]), flush=True)
    srv.serve_forever(poll_interval=0.5)


if __name__ == "__main__":
    main()
