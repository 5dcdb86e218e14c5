"""Fake Redis peers for faults a real server cannot produce on demand:
garbage on the wire, a reply dripped slowly, a reset mid-conversation, a
reply larger than the cap, silence, a reply cut in half, and the single-section INFO of
Redis < 7.0. Each listens on its own loopback port in a thread.

Hostile modes (a peer that means harm; the mode can change while it runs):
"nested", "flat" and "intmax" stream array replies to INFO far larger than
any cap (counting what they manage to send in .sent), "cmdstats" adds
CMDSTATS cmdstat_ lines in a new order to every INFO reply, and "busy"
answers CONFIG GET and LATENCY LATEST with a transient error the first time
only."""
import random
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
        self.sent = 0  # bytes the hostile streaming modes managed to send
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
        hostile = getattr(self, "_mode_" + self.mode, None)  # the modes below the original ones
        if hostile is not None:
            return hostile(c, cmd)
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

    # ---- hostile modes ---------------------------------------------------

    CMDSTATS = 50000
    CONFIG_VALUES = {"appendonly": "no", "appendfsync": "everysec", "save": "3600 1 300 100",
                     "maxmemory-policy": "noeviction", "maxmemory": "1048576"}

    def _plain(self, c, cmd):
        """What every mode answers alike: AUTH, CLIENT, unknown commands."""
        name = cmd[0].upper() if cmd else ""
        if name in ("AUTH", "CLIENT"):
            c.sendall(b"+OK\r\n")
        else:
            c.sendall(b"-ERR unknown command '%s', with args beginning with: \r\n" % name.encode())
        return True

    def _stream(self, c, head, chunk, count):
        """Sends head then chunk count times, counting bytes in .sent, until
        the agent hangs up (as it must, long before the end)."""
        c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
        try:
            c.sendall(head)
            self.sent += len(head)
            for _ in range(count):
                if self.stopping:
                    return False
                c.sendall(chunk)
                self.sent += len(chunk)
        except OSError:
            return False
        return False

    def _mode_nested(self, c, cmd):
        """INFO: an array of 1000 arrays of 1000 strings of 200 bytes (200 MB)."""
        if not cmd or cmd[0].upper() != "INFO":
            return self._plain(c, cmd)
        inner = b"*1000\r\n" + bulk(b"n" * 200) * 1000
        return self._stream(c, b"*1000\r\n", inner, 1000)

    def _mode_flat(self, c, cmd):
        """INFO: one array of a million strings of 100 bytes (100 MB)."""
        if not cmd or cmd[0].upper() != "INFO":
            return self._plain(c, cmd)
        return self._stream(c, b"*1000000\r\n", bulk(b"f" * 100) * 1000, 1000)

    def _mode_intmax(self, c, cmd):
        """INFO: an array announcing 2^31 elements, then integers."""
        if not cmd or cmd[0].upper() != "INFO":
            return self._plain(c, cmd)
        return self._stream(c, b"*2147483648\r\n", b":1\r\n" * 25000, 1000)

    def _mode_cmdstats(self, c, cmd):
        """INFO: the fixture plus CMDSTATS commands, in a new order each time."""
        if not cmd or cmd[0].upper() != "INFO":
            return self._plain(c, cmd)
        if not hasattr(self, "_cmd_lines"):
            self._cmd_lines = [b"cmdstat_c%05d:calls=%d,usec=%d" % (i, i + 1, 2 * i + 1)
                               for i in range(self.CMDSTATS)]
            self.orders = 0
        random.shuffle(self._cmd_lines)
        self.orders += 1
        c.sendall(bulk(self.info.rstrip(b"\r\n") + b"\r\n# Commandstats\r\n" +
                       b"\r\n".join(self._cmd_lines) + b"\r\n"))
        return True

    def _mode_busy(self, c, cmd):
        """CONFIG GET and LATENCY LATEST: -BUSY / -LOADING the first time
        each is asked, then real answers."""
        name = cmd[0].upper() if cmd else ""
        with self.lock:
            seen = self.__dict__.setdefault("asked", {})
            seen[name] = seen.get(name, 0) + 1
            first = seen[name] == 1
        if name == "INFO":
            c.sendall(bulk(self.info))
        elif name == "CONFIG" and first:
            c.sendall(b"-BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.\r\n")
        elif name == "CONFIG":
            out = b""
            for p in cmd[2:]:
                out += bulk(p) + bulk(self.CONFIG_VALUES.get(p, "0"))
            c.sendall(b"*%d\r\n" % (2 * len(cmd[2:])) + out)
        elif name == "LATENCY" and first:
            c.sendall(b"-LOADING Redis is loading the dataset in memory\r\n")
        elif name == "LATENCY":
            c.sendall(b"*1\r\n*4\r\n" + bulk("command") + b":1700000000\r\n:250\r\n:1000\r\n")
        else:
            return self._plain(c, cmd)
        return True

    def _mode_latencyflood(self, c, cmd):
        """LATENCY LATEST with 40 events, a repeated name and two elements
        of another shape; everything else as a plain server."""
        if cmd and cmd[0].upper() == "LATENCY":
            evs = [b"*4\r\n" + bulk("event-%02d" % i) + b":1700000000\r\n:5\r\n:9\r\n" for i in range(40)]
            evs.insert(3, b"*4\r\n" + bulk("event-00") + b":1700000001\r\n:6\r\n:9\r\n")  # a repeat
            evs.insert(0, b":7\r\n")  # not an array
            evs.insert(5, b"*2\r\n" + bulk("short") + b":1\r\n")  # too few fields
            c.sendall(b"*%d\r\n" % len(evs) + b"".join(evs))
            return True
        if cmd and cmd[0].upper() == "INFO":
            c.sendall(bulk(self.info))
            return True
        return self._plain(c, cmd)

    def info_commands(self):
        with self.lock:
            return [cmd for cmd in self.commands if cmd and cmd[0].upper() == "INFO"]

    def stop(self):
        self.stopping = True
        try:
            self.sock.close()
        except OSError:
            pass
