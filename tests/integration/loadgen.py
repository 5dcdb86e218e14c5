"""A paced load generator that measures itself: every tick (10 ms) it sends
one pipelined batch of SETs and GETs and records, when the replies are
back, the wall time and how many of each the server acknowledged. Rates over
any window come from that log, so tests compare redpulse with what was
really done, not with what was asked for."""
import bisect
import socket
import threading
import time

from harness import Resp


class LoadGen(threading.Thread):
    def __init__(self, port, writes_per_sec=0, reads_per_sec=0, tick=0.01, prefix="lg", keyspace=5000):
        super().__init__(daemon=True)
        self.port = port
        self.w = int(round(writes_per_sec * tick))
        self.r = int(round(reads_per_sec * tick))
        self.tick = tick
        self.prefix = prefix
        self.keyspace = keyspace
        self.times = []   # wall time after each acknowledged batch
        self.cum_w = []   # cumulative acknowledged writes at that time
        self.cum_r = []
        self.reconnects = 0
        self.stopping = threading.Event()
        self.lock = threading.Lock()

    def run(self):
        conn = None
        tw = tr = 0
        n = 0
        nxt = time.monotonic()
        while not self.stopping.is_set():
            # walk the keyspace so the dataset grows to `keyspace` keys; reads
            # follow the writes, so they hit
            base = n * self.w
            batch = [("SET", "%s:%d" % (self.prefix, (base + i) % self.keyspace), "v" * 16) for i in range(self.w)]
            batch += [("GET", "%s:%d" % (self.prefix, (base + i) % max(1, min(base + self.w, self.keyspace))))
                      for i in range(self.r)]
            try:
                if conn is None:
                    conn = Resp(self.port)
                conn.pipeline(batch)
                tw += self.w
                tr += self.r
                with self.lock:
                    self.times.append(time.time())
                    self.cum_w.append(tw)
                    self.cum_r.append(tr)
            except (OSError, ConnectionError, RuntimeError):
                if conn:
                    conn.close()
                conn = None
                self.reconnects += 1
                time.sleep(0.02)
                nxt = time.monotonic()
                continue
            n += 1
            nxt += self.tick
            delay = nxt - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -0.5:  # fell far behind: do not burst to catch up
                nxt = time.monotonic()
        if conn:
            conn.close()

    def _at(self, series, t):
        with self.lock:
            i = bisect.bisect_right(self.times, t)
            return series[i - 1] if i > 0 else 0

    def _per_s(self, kind, a, b, t0, t1):
        """Commands of kind done between times a and b, per second of
        [t0, t1]."""
        series = self.cum_w if kind == "w" else self.cum_r
        return (self._at(series, b) - self._at(series, a)) / (t1 - t0)

    def rate(self, t0, t1, kind="w"):
        return self._per_s(kind, t0, t1, t0, t1)

    def rate_bounds(self, t0, t1, slack, kind="w"):
        """The least and the most rate over [t0, t1], with each edge known
        only within slack seconds: (count(t1 - slack) - count(t0 + slack)) /
        (t1 - t0), and (count(t1 + slack) - count(t0 - slack)) / (t1 - t0).
        Waits until t1 + slack has passed (what is acknowledged later is not
        logged yet)."""
        wait = t1 + slack + self.tick - time.time()
        if wait > 0:
            time.sleep(wait)
        return (self._per_s(kind, t0 + slack, t1 - slack, t0, t1),
                self._per_s(kind, t0 - slack, t1 + slack, t0, t1))

    def stop(self):
        self.stopping.set()
        self.join(10)
