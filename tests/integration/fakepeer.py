"""Fake Redis peers for faults a real server cannot produce on demand:
garbage on the wire, a reply dripped slowly, a reset mid-conversation, a
reply larger than the cap, silence, a reply cut in half, and the single-section INFO of
Redis < 7.0. Each listens on its own loopback port in a thread."""
import os
import socket
import struct
import threading
import time

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures")


def read_command(f):
    """One RESP array command from file f, as a list of str, or None at EOF."""
    line = f.readline()
    if not line:
        return None
    if not line.startswith(b"*"):
        return line.strip().decode("latin-1").split()
    n = int(line[1:])
    args = []
    for _ in range(n):
        ln = int(f.readline()[1:])
        args.append(f.read(ln + 2)[:-2].decode("latin-1"))
    return args


def bulk(s):
    if isinstance(s, str):
        s = s.encode()
    return b"$%d\r\n%s\r\n" % (len(s), s)


class FakePeer:
    def __init__(self, mode, info_fixture="info-redis-7.0.15-master.txt"):
        self.mode = mode
        with open(os.path.join(FIXTURES, info_fixture), "rb") as fh:
            self.info = fh.read()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.commands = []
        self.connections = 0
        self.stopping = False
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        f = c.makefile("rb")
        try:
            while not self.stopping:
                cmd = read_command(f)
                if cmd is None:
                    return
                with self.lock:
                    self.commands.append(cmd)
                if not self._answer(c, cmd):
                    return
        except OSError:
            pass
        finally:
            try:
                c.close()
            except OSError:
                pass

    def _answer(self, c, cmd):
        name = cmd[0].upper() if cmd else ""
        m = self.mode
        if name in ("AUTH",):
            c.sendall(b"+OK\r\n")
            return True
        if name == "CLIENT":
            c.sendall(b"+OK\r\n")
            return True
        if name != "INFO":
            c.sendall(b"-ERR unknown command\r\n")
            return True
        if m == "garbage":
            c.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            time.sleep(0.5)
            return False
        if m == "drip":
            for b in bulk(self.info):
                c.sendall(bytes([b]))
                time.sleep(0.05)
                if self.stopping:
                    return False
            return True
        if m == "halfclose":  # killed mid-reply
            data = bulk(self.info)
            c.sendall(data[:len(data) // 2])
            return False
        if m == "reset":
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.close()
            return False
        if m == "huge":
            big = b"x" * (2 << 20)
            try:
                c.sendall(b"$%d\r\n" % len(big) + big + b"\r\n")
            except OSError:
                pass
            return False
        if m == "hang":
            while not self.stopping:
                time.sleep(0.1)
            return False
        if m == "redis6":
            if len(cmd) > 2:
                c.sendall(b"-ERR syntax error\r\n")
            else:
                c.sendall(bulk(self.info))
            return True
        c.sendall(bulk(self.info))  # "ok"
        return True

    def info_commands(self):
        with self.lock:
            return [cmd for cmd in self.commands if cmd and cmd[0].upper() == "INFO"]

    def stop(self):
        self.stopping = True
        try:
            self.sock.close()
        except OSError:
            pass
