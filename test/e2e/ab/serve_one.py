#!/usr/bin/python3
# Answers one HTTP GET on stdin/stdout from a directory: QEMU runs it per guest connection as a
# `cmd:` guest forward. Paths under /slow/ are sent at about 1 MiB/s, so that a test can cut the
# power while the guest writes a slot. Always sends Content-Length (the forward does not pass a
# close on to the guest, so clients must know where the body ends).
import os
import sys
import time

root = sys.argv[1]
inp, out = sys.stdin.buffer, sys.stdout.buffer
request = inp.readline().decode("latin-1").split()
while inp.readline() not in (b"\r\n", b"\n", b""):
    pass
path = request[1] if len(request) > 1 else "/"
slow = path.startswith("/slow/")
if slow:
    path = path[len("/slow"):]
file = os.path.join(root, os.path.normpath(path).lstrip("/"))
try:
    with open(file, "rb") as f:
        body = f.read()
except OSError:
    msg = b"not found\n"
    out.write(b"HTTP/1.0 404 Not Found\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
              % (len(msg), msg))
    out.flush()
    sys.exit(0)
out.write(b"HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\n"
          b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body))
chunk = 64 * 1024
for off in range(0, len(body), chunk):
    out.write(body[off:off + chunk])
    out.flush()
    if slow:
        time.sleep(chunk / (1024 * 1024))
out.flush()
