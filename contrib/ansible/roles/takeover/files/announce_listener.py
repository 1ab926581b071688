#!/usr/bin/python3
# The controller's end of the agent's announce protocol (plugins/payload_embedded/README.md,
# "Announcing itself and answering"): takes the agent's HTTP/1.0 POST, appends its JSON body as
# one line to a file, and answers 200, which the agent counts as announced.
#
#   announce_listener.py --listen ADDRESS:PORT FILE    serve until killed
#   announce_listener.py --stdio FILE                  one request on stdin/stdout (inetd, or a
#                                                      QEMU `cmd:` guest forward)
import fcntl
import json
import socketserver
import sys

MAX_BODY = 64 * 1024


def answer(inp, out, record):
    """Reads one request from `inp`, records a valid announcement, answers on `out`."""
    request = inp.readline().decode("latin-1").split()
    length = 0
    while True:
        line = inp.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        if name.strip().lower() == "content-length" and value.strip().isdigit():
            length = int(value.strip())
    body = inp.read(min(length, MAX_BODY)) if length else b""
    try:
        if len(request) < 2 or request[0] != "POST":
            raise ValueError("expected a POST, got %r" % " ".join(request))
        doc = json.loads(body)
        if not isinstance(doc, dict) or not isinstance(doc.get("machine_id"), str) \
                or not isinstance(doc.get("public_key"), str):
            raise ValueError("expected machine_id and public_key in %r" % body[:200])
    except ValueError as e:
        message = ("bad announcement: %s\n" % e).encode()
        sys.stderr.write(message.decode())
        out.write(b"HTTP/1.0 400 Bad Request\r\nContent-Length: %d\r\n\r\n%s"
                  % (len(message), message))
        out.flush()
        return
    with open(record, "a") as f:
        # Several agents may announce at once: one whole line each.
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write(json.dumps(doc, separators=(",", ":"), sort_keys=True) + "\n")
    # Content-Length even when empty: a forward that hides the close must not leave the agent
    # waiting for a body (it reads only the headers anyway).
    out.write(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")
    out.flush()


def main(argv):
    if len(argv) == 2 and argv[0] == "--stdio":
        answer(sys.stdin.buffer, sys.stdout.buffer, argv[1])
        return 0
    if len(argv) == 3 and argv[0] == "--listen":
        host, _, port = argv[1].rpartition(":")
        record = argv[2]

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                answer(self.rfile, self.wfile, record)

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        with socketserver.ThreadingTCPServer((host.strip("[]"), int(port)), Handler) as server:
            server.serve_forever()
    sys.stderr.write("usage: announce_listener.py --listen ADDRESS:PORT FILE | --stdio FILE\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
