#!/usr/bin/env python3
"""Loopback HTTP server for the bundle download tests (core/bundle/test/http_test.cpp).

Serves one file under routes that misbehave in the ways the download code must handle. Usage:
http_server.py <file>; prints the port on stdout, exits when stdin closes or after 120 s.
"""
import http.server
import os
import sys
import threading
import time
from collections import Counter

BODY = b""
ETAG = '"bundle-v1"'
COUNTS = Counter()
SENT = Counter()  # body bytes written per path (/ranged, /stall-after/<n>)
RANGES = {}  # path -> the first byte of every Range request answered with 206
LOCK = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def send_body(self, status, body, headers=(), length=None):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def send_counted(self, body, key=None):
        """Writes `body` in 64 KiB pieces, counting what the socket took under the path (and
        `key`), until the client goes away."""
        for i in range(0, len(body), 1 << 16):
            piece = body[i:i + (1 << 16)]
            try:
                self.wfile.write(piece)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True
                return
            with LOCK:
                SENT[self.path] += len(piece)
                if key:
                    SENT[key] += len(piece)

    def cut(self, etag):
        """200 with the full Content-Length, then half the body and a closed connection."""
        self.close_connection = True
        self.send_body(200, BODY[: len(BODY) // 2],
                       [("ETag", ETAG)] if etag else [], length=len(BODY))

    def do_GET(self):
        parts = self.path.strip("/").split("/")
        route = parts[0]
        with LOCK:
            COUNTS[self.path] += 1
            n = COUNTS[self.path]
        if route == "count":
            key = "/" + "/".join(parts[1:])
            with LOCK:
                c = COUNTS[key]
            return self.send_body(200, str(c).encode())
        # /sent/<path>: body bytes sent for <path> (/sent/<path>@ranges: in 206 responses);
        # /ranges/<path>: the first byte of each Range request answered.
        if route in ("sent", "ranges"):
            key = "/" + "/".join(parts[1:])
            with LOCK:
                value = SENT[key] if route == "sent" else \
                    ",".join(str(r) for r in RANGES.get(key, []))
            return self.send_body(200, str(value).encode())
        # The file, or bytes N..M for "Range: bytes=N-M" (N..the end for "bytes=N-") with
        # If-Range (RFC 9110 §14.1.2: M is inclusive).
        if route == "ranged":
            rng = self.headers.get("Range", "")
            if rng.startswith("bytes=") and self.headers.get("If-Range") == ETAG:
                first, _, last = rng[6:].partition("-")
                start = int(first)
                end = min(int(last) + 1, len(BODY)) if last else len(BODY)
                with LOCK:
                    RANGES.setdefault(self.path, []).append(start)
                self.send_response(206)
                self.send_header("Content-Length", str(end - start))
                self.send_header("ETag", ETAG)
                self.send_header("Content-Range",
                                 "bytes %d-%d/%d" % (start, end - 1, len(BODY)))
                self.end_headers()
                return self.send_counted(BODY[start:end], self.path + "@ranges")
            self.send_response(200)
            self.send_header("Content-Length", str(len(BODY)))
            self.send_header("ETag", ETAG)
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            return self.send_counted(BODY)
        if route == "ranged-refused":  # offers ranges, then refuses every Range request
            if self.headers.get("Range"):
                with LOCK:
                    RANGES.setdefault(self.path, []).append(-1)
                return self.send_body(416, b"no ranges today")
            self.send_response(200)
            self.send_header("Content-Length", str(len(BODY)))
            self.send_header("ETag", ETAG)
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            return self.send_counted(BODY)
        # Offer ranges, then answer every Range request with 200: the whole file with the same
        # ETag (a server or proxy that ignores Range), or a different one (the file changed).
        if route in ("ranged-ignored", "ranged-changed"):
            ranged = bool(self.headers.get("Range"))
            self.send_response(200)
            self.send_header("Content-Length", str(len(BODY)))
            self.send_header("ETag", '"bundle-v2"' if ranged and route == "ranged-changed"
                             else ETAG)
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            return self.send_counted(BODY)
        if route == "stall-after":  # /stall-after/<n>: n bytes of the body, then silence
            self.send_response(200)
            self.send_header("Content-Length", str(len(BODY)))
            self.send_header("ETag", ETAG)
            self.end_headers()
            self.send_counted(BODY[:int(parts[1])])
            time.sleep(60)
            return
        if route == "ok":
            return self.send_body(200, BODY, [("ETag", ETAG)])
        if route == "redirect":
            return self.send_body(302, b"", [("Location", "/ok")])
        if route == "empty":
            return self.send_body(200, b"")
        if route == "flaky":  # 503 twice, then the file
            if n <= 2:
                return self.send_body(503, b"busy")
            return self.send_body(200, BODY)
        if route == "always503":
            return self.send_body(503, b"busy")
        if route == "always500":
            return self.send_body(500, b"broken")
        if route == "loop":  # redirects to itself forever
            return self.send_body(302, b"", [("Location", "/loop")])
        if route.startswith("missing"):  # /missing, /missing.zip
            return self.send_body(404, b"no such bundle")
        if route == "stall":  # 100 bytes of the body, then silence
            self.send_body(200, BODY[:100], length=len(BODY))
            time.sleep(30)
            return
        if route == "hang":  # no response at all
            time.sleep(30)
            return
        if route in ("cut", "cut-noetag", "wrong-range", "wrong-total"):
            if n == 1:
                return self.cut(etag=route != "cut-noetag")
            rng = self.headers.get("Range", "")
            if route != "cut-noetag" and rng.startswith("bytes=") and \
                    self.headers.get("If-Range") == ETAG:
                start = int(rng[6:].split("-")[0])
                if route == "wrong-range":
                    start -= 1
                # wrong-total: the right bytes, but said to be of a longer file.
                total = len(BODY) + (1 if route == "wrong-total" else 0)
                return self.send_body(
                    206, BODY[start:],
                    [("ETag", ETAG),
                     ("Content-Range", "bytes %d-%d/%d" % (start, len(BODY) - 1, total))])
            return self.send_body(200, BODY, [("ETag", ETAG)])
        if route == "zeros":  # /zeros/<bytes>: streamed in 1 MiB writes
            total = int(parts[1])
            self.send_response(200)
            self.send_header("Content-Length", str(total))
            self.end_headers()
            chunk = bytes(1 << 20)
            left = total
            while left > 0:
                k = min(left, len(chunk))
                self.wfile.write(chunk[:k])
                left -= k
            return
        return self.send_body(400, b"unknown route")


def main():
    global BODY
    with open(sys.argv[1], "rb") as f:
        BODY = f.read()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(server.server_address[1], flush=True)
    # Bounded life: the test closes stdin when done; never outlive 120 s anyway.
    watchdog = threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True)
    watchdog.start()
    watchdog.join(120)
    os._exit(0)


if __name__ == "__main__":
    main()
