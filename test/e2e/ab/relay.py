#!/usr/bin/python3
# Relays one guest connection to a TCP port on the host's loopback: QEMU runs it per connection
# as a `cmd:` guest forward (stdin/stdout are the guest's stream), so that a guest behind
# restrict=on user networking reaches a server the test started on 127.0.0.1 (nginx behind the
# fault proxy). QEMU does not pass the end of this process on to the guest as a close, so a
# connection the server cuts looks to the guest like a stall.
import os
import selectors
import socket
import sys

upstream = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
sel = selectors.DefaultSelector()
sel.register(0, selectors.EVENT_READ)
sel.register(upstream, selectors.EVENT_READ)
while True:
    for key, _ in sel.select():
        if key.fileobj == 0:
            data = os.read(0, 1 << 16)
            if not data:
                sel.unregister(0)
                upstream.shutdown(socket.SHUT_WR)
                continue
            upstream.sendall(data)
        else:
            data = upstream.recv(1 << 16)
            if not data:
                sys.exit(0)
            view = memoryview(data)
            while view:
                view = view[os.write(1, view):]
