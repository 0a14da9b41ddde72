#!/usr/bin/env python3
"""Test helper copied onto the cluster's nodes (Molecule scenarios and the demo).

  nodetool.py serve PROTO:ADDR:PORT...     stand-in service: accept TCP and close,
                                           echo UDP; runs until killed
  nodetool.py probe [-t SECONDS] PROTO:HOST:PORT...
                                           connect to each at once, print one JSON
                                           object {target: open|blocked|refused|error}
  nodetool.py reserved PORT|A-B...         print the given ports that are NOT in the
                                           kernel's ip_local_reserved_ports; exit 1 if any

probe: TCP open = connected, refused = RST (nothing listens), blocked = no answer
before the timeout (a firewall drop). UDP open = the stand-in's echo came back,
refused = ICMP port unreachable, blocked = silence.
"""
import json
import os
import selectors
import socket
import sys
import threading


def parse(spec):
    proto, _, rest = spec.partition(":")
    host, _, port = rest.rpartition(":")
    if proto not in ("tcp", "udp") or not host or not port.isdigit():
        sys.exit("nodetool: %r is not PROTO:HOST:PORT" % spec)
    return proto, host, int(port)


def serve(specs):
    sel = selectors.DefaultSelector()
    for proto, addr, port in map(parse, specs):
        kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
        sock = socket.socket(socket.AF_INET, kind)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((addr, port))
        if proto == "tcp":
            sock.listen(64)
        sel.register(sock, selectors.EVENT_READ, proto)
    while True:
        for key, _ in sel.select():
            try:
                if key.data == "tcp":
                    conn, _ = key.fileobj.accept()
                    conn.close()
                else:
                    data, peer = key.fileobj.recvfrom(2048)
                    key.fileobj.sendto(data, peer)
            except OSError:
                pass


def probe_one(proto, host, port, timeout):
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.settimeout(timeout)
        try:
            if proto == "tcp":
                sock.connect((host, port))
                return "open"
            sock.connect((host, port))
            sock.send(b"portmatrix")
            return "open" if sock.recv(2048) == b"portmatrix" else "error"
        except socket.timeout:
            return "blocked"
        except ConnectionRefusedError:
            return "refused"
        except OSError as error:
            return "error: %s" % error


def probe(args):
    timeout = 1.0
    if args[:1] == ["-t"]:
        timeout, args = float(args[1]), args[2:]
    results = {}
    def run(spec):
        results[spec] = probe_one(*parse(spec), timeout)
    threads = [threading.Thread(target=run, args=(spec,)) for spec in args]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(json.dumps(results, sort_keys=True))


def ports_of(text):
    for item in filter(None, text.replace(",", " ").split()):
        low, _, high = item.partition("-")
        yield from range(int(low), int(high or low) + 1)


def reserved(args):
    # One read(): the kernel renders this value per call and ignores the
    # offset, so a buffered multi-read would garble a long value.
    fd = os.open("/proc/sys/net/ipv4/ip_local_reserved_ports", os.O_RDONLY)
    try:
        have = set(ports_of(os.read(fd, 1 << 18).decode()))
    finally:
        os.close(fd)
    missing = [a for a in args if not set(ports_of(a)) <= have]
    print(" ".join(missing))
    sys.exit(1 if missing else 0)


if __name__ == "__main__":
    commands = {"serve": serve, "probe": probe, "reserved": reserved}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.exit(__doc__)
    commands[sys.argv[1]](sys.argv[2:])
