#!/usr/bin/env python3
"""`redpulse --reload PID`, the ExecReload= of the unit, against a real
daemon and real redis-servers: it returns only once the reload it caused
has been applied (the configuration file is a FIFO the test fills late, and
the new instance is in /metrics the moment the client exits), prints every
error and exits 1 on a broken file while the old configuration keeps
running, exits 1 on a reload applied except its HTTP settings, times out
cleanly (exit 3) on a daemon that never finishes, never signals a process
that publishes no status (a `sleep`, which SIGHUP would kill), and the
status file goes away with the daemon."""
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BIN, Agent, RedisServer, Tmp, series, value, wait_for  # noqa: E402

DEFAULTS = {"interval": "500ms", "timeout": "400ms"}


def fnv1a(data):
    h = 14695981039346656037
    for c in data:
        h = ((h ^ c) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h


class ReloadWait(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = Tmp()
        cls.run_dir = os.path.join(cls.tmp.path, "run")
        os.mkdir(cls.run_dir, 0o700)
        cls.env = dict(os.environ, RUNTIME_DIRECTORY=cls.run_dir)
        cls.r = [RedisServer(cls.tmp.path, "r%d" % i) for i in range(2)]
        cls.agent = Agent(cls.tmp.path, [cls.inst("a", 0)], defaults=DEFAULTS, env={"RUNTIME_DIRECTORY": cls.run_dir})
        cls.status = os.path.join(cls.run_dir, "reload-status")

    @classmethod
    def tearDownClass(cls):
        rc = cls.agent.stop()
        for r in cls.r:
            r.stop()
        log = cls.agent.log_text()
        gone = not os.path.exists(cls.status)
        cls.tmp.cleanup()
        assert rc == 0, log
        assert gone, "the status file outlived the daemon"

    @classmethod
    def inst(cls, name, i):
        return {"name": name, "address": "127.0.0.1:%d" % cls.r[i].port}

    def config(self, instances, listen=None):
        cfg = {"listen": listen or "127.0.0.1:%d" % self.agent.port, "defaults": DEFAULTS, "instances": instances}
        return json.dumps(cfg, indent=2).encode()

    def write(self, data):
        tmp = self.agent.path + ".new"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, self.agent.path)

    def client(self, *args, env=None, pid=None):
        return subprocess.Popen([BIN, "--reload", str(pid or self.agent.proc.pid)] + list(args),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env or self.env)

    def reload(self, *args, **kw):
        p = self.client(*args, **kw)
        out, err = p.communicate(timeout=60)
        return p.returncode, out.decode(), err.decode()

    def read_status(self):
        try:
            with open(self.status) as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            return {}
        return dict(l.split(" ", 1) for l in lines[1:] if not l.startswith("error "))

    def targets(self):
        return sorted(l["target"] for l, _ in series(self.agent.metrics(), "redis_up"))

    def stall(self):
        """Replaces the file by a FIFO: the next reload blocks in open()."""
        os.unlink(self.agent.path)
        os.mkfifo(self.agent.path)

    def test_1_returns_once_applied(self):
        self.write(self.config([self.inst("a", 0)]))
        self.assertEqual(self.reload()[0], 0)
        self.assertEqual(self.targets(), ["a"])
        seq = int(self.read_status()["seq"])
        new = self.config([self.inst("a", 0), self.inst("b", 1)])
        self.stall()
        p = self.client()
        wait_for(lambda: self.read_status().get("state") == "reloading" and int(self.read_status()["seq"]) == seq + 1,
                 10, what="the daemon reading the FIFO")
        # the reload cannot end before the file is written: neither may the client
        t = time.monotonic()
        while time.monotonic() - t < 0.5:
            self.assertIsNone(p.poll(), "--reload returned before the reload ended")
            time.sleep(0.05)
        with open(self.agent.path, "wb") as f:
            f.write(new)
        out, err = p.communicate(timeout=10)
        m = self.agent.metrics()  # at once: no waiting here
        self.assertEqual(p.returncode, 0, err)
        self.assertEqual(sorted(l["target"] for l, _ in series(m, "redis_up")), ["a", "b"])
        self.assertEqual(value(m, "redpulse_config_last_reload_successful"), 1)
        self.assertEqual(series(m, "redpulse_config_hash")[0][0]["hash"], fnv1a(new))
        self.assertIn("reloaded: configuration hash %s" % fnv1a(new), out.decode())
        os.unlink(self.agent.path)
        self.write(new)

    def test_2_broken_file_fails_and_old_config_runs(self):
        good = self.config([self.inst("a", 0), self.inst("b", 1)])
        self.write(good)
        self.assertEqual(self.reload()[0], 0)
        bad = self.config([self.inst("a", 0)]).replace(b'"name"', b'"nmae"')
        self.write(bad)
        rc, out, err = self.reload()
        self.assertEqual(rc, 1, out + err)
        self.assertRegex(err, r'instances\[0\]\.nmae \(line \d+, column \d+\): unknown key "nmae"')
        self.assertIn("reload failed; process %d keeps running the previous configuration (hash %s)"
                      % (self.agent.proc.pid, fnv1a(good)), err)
        m = self.agent.metrics()
        self.assertEqual(sorted(l["target"] for l, _ in series(m, "redis_up")), ["a", "b"])
        self.assertEqual(value(m, "redpulse_config_last_reload_successful"), 0)
        self.assertEqual(series(m, "redpulse_config_hash")[0][0]["hash"], fnv1a(good))
        # fixed again
        self.write(self.config([self.inst("a", 0)]))
        rc, out, err = self.reload()
        self.assertEqual(rc, 0, err)
        self.assertEqual(value(self.agent.metrics(), "redpulse_config_last_reload_successful"), 1)
        self.assertEqual(self.targets(), ["a"])

    def test_3_partial_when_http_cannot_rebind(self):
        taken = socket.socket()
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        try:
            self.write(self.config([self.inst("a", 0), self.inst("b", 1)],
                                   listen="127.0.0.1:%d" % taken.getsockname()[1]))
            rc, out, err = self.reload()
        finally:
            taken.close()
        self.assertEqual(rc, 1, out + err)
        self.assertIn("new HTTP settings not applied", err)
        self.assertIn("except what the errors above name", err)
        self.assertEqual(self.targets(), ["a", "b"])  # the rest of the file is applied
        self.write(self.config([self.inst("a", 0)]))
        self.assertEqual(self.reload()[0], 0)

    def test_4_times_out_on_a_daemon_that_never_finishes(self):
        new = self.config([self.inst("a", 0)])
        self.stall()
        try:
            t = time.monotonic()
            rc, out, err = self.reload("--reload-timeout", "1")
            took = time.monotonic() - t
            self.assertEqual(rc, 3, out + err)
            self.assertGreaterEqual(took, 0.9)
            self.assertLess(took, 5)
            self.assertIn("did not finish reloading within 1 s", err)
        finally:
            with open(self.agent.path, "wb") as f:  # releases the loop
                f.write(new)
        wait_for(lambda: self.read_status().get("state") == "done", 10, what="the stalled reload ending")
        os.unlink(self.agent.path)
        self.write(new)
        self.assertEqual(self.reload()[0], 0)

    def test_5_no_status_no_signal(self):
        # a process that is not redpulse: SIGHUP would kill it; the status
        # file in the directory belongs to the agent, not to it
        sleeper = subprocess.Popen(["sleep", "60"])
        try:
            t = time.monotonic()
            rc, out, err = self.reload("--reload-timeout", "0.5", pid=sleeper.pid)
            self.assertEqual(rc, 3, out + err)
            self.assertLess(time.monotonic() - t, 5)
            self.assertIn("published no reload status", err)
            self.assertIsNone(sleeper.poll(), "the process was signalled")
        finally:
            sleeper.kill()
            sleeper.wait()
        rc, out, err = self.reload(pid=sleeper.pid)
        self.assertEqual(rc, 3)
        self.assertIn("no process %d" % sleeper.pid, err)
        env = dict(self.env)
        del env["RUNTIME_DIRECTORY"]
        rc, out, err = self.reload(env=env)
        self.assertEqual(rc, 2)
        self.assertIn("RUNTIME_DIRECTORY is not set", err)
        for bad in (["--reload-timeout", "0"], ["--reload-timeout", "x"]):
            self.assertEqual(self.reload(*bad)[0], 2, bad)
        self.assertEqual(self.reload(pid="12abc")[0], 2)

    def test_5b_reload_already_running_is_not_taken_for_ours(self):
        # a reload started by a plain SIGHUP is stuck reading the old file
        # (A) when --reload starts; the file is then B. The answer must be
        # the next reload's (B), not the one already running (A). (A client
        # taking A's would be wrong only if it read between A's end and
        # the next reload's start, microseconds here: this checks the
        # outcome, it cannot catch that reliably.)
        a = self.config([self.inst("a", 0)])
        b = self.config([self.inst("a", 0), self.inst("b", 1)])
        self.write(a)
        self.assertEqual(self.reload()[0], 0)
        seq = int(self.read_status()["seq"])
        self.stall()
        fifo = self.agent.path + ".fifo"
        os.link(self.agent.path, fifo)
        self.agent.proc.send_signal(signal.SIGHUP)

        def writer():  # succeeds once the daemon is in open(), reading
            try:
                return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                return None

        fd = wait_for(writer, 10, what="the daemon opening the FIFO")
        self.assertEqual(self.read_status()["state"], "reloading")
        self.write(b)  # the edit that prompts the reload
        p = self.client()
        try:
            os.set_blocking(fd, True)
            os.write(fd, a)  # the running reload gets A
            os.close(fd)
            wait_for(lambda: int(self.read_status()["seq"]) >= seq + 2, 10, what="the next reload")
            out, err = p.communicate(timeout=10)
        finally:
            os.unlink(fifo)
        self.assertEqual(p.returncode, 0, err)
        self.assertIn("configuration hash %s" % fnv1a(b), out.decode())
        self.assertEqual(self.targets(), ["a", "b"])

    def test_6_concurrent_clients_each_see_a_later_reload(self):
        # Signals that arrive during a reload fold into the next one: a
        # client that finds a reload running must wait for that next one,
        # not one more (which may never come). Several rounds, since the
        # interleaving is the scheduler's.
        self.write(self.config([self.inst("a", 0), self.inst("b", 1)]))
        for _ in range(5):
            seq0 = int(self.read_status()["seq"])
            res = [None] * 6

            def one(i):
                res[i] = self.reload("--reload-timeout", "10")

            ts = [threading.Thread(target=one, args=(i,)) for i in range(len(res))]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            for rc, out, err in res:
                self.assertEqual(rc, 0, err)
            self.assertGreater(int(self.read_status()["seq"]), seq0)
        self.assertEqual(self.targets(), ["a", "b"])


class RuntimeDirectory(unittest.TestCase):
    """Where the daemon publishes its reloads (review): a directory missing
    is made (mode 0700: the man page's example without systemd did not
    work), one that other users can write in is refused, and a symlink
    planted at the temporary file is not written through."""

    def setUp(self):
        self.tmp = Tmp()
        self.r = RedisServer(self.tmp.path, "r")

    def tearDown(self):
        self.r.stop()
        self.tmp.cleanup()

    def agent(self, run_dir):
        return Agent(self.tmp.path, [{"name": "a", "address": "127.0.0.1:%d" % self.r.port}], defaults=DEFAULTS,
                     env={"RUNTIME_DIRECTORY": run_dir})

    def test_missing_is_made(self):
        d = os.path.join(self.tmp.path, "run-new")
        a = self.agent(d)
        try:
            wait_for(lambda: os.path.exists(os.path.join(d, "reload-status")), 5, what="the status published")
            self.assertEqual(os.stat(d).st_mode & 0o777, 0o700)
        finally:
            self.assertEqual(a.stop(), 0)

    def test_writable_by_others_is_refused(self):
        d = os.path.join(self.tmp.path, "run-open")
        os.mkdir(d)
        os.chmod(d, 0o777)
        a = self.agent(d)
        try:
            wait_for(lambda: "no reload status is published there" in a.log_text(), 5, what="the refusal")
            self.assertIn("mode 0777", a.log_text())
            self.assertEqual(os.listdir(d), [])
        finally:
            self.assertEqual(a.stop(), 0)

    def test_symlink_to_a_directory_is_refused(self):
        """The directory is opened once, not through a symlink, and checked
        as opened: one swapped in by a symlink later is never written to."""
        real = os.path.join(self.tmp.path, "elsewhere")
        os.mkdir(real, 0o700)
        d = os.path.join(self.tmp.path, "run-link")
        os.symlink(real, d)
        a = self.agent(d)
        try:
            wait_for(lambda: "a symlink, or not a directory" in a.log_text(), 5, what="the refusal")
            self.assertEqual(os.listdir(real), [])
        finally:
            self.assertEqual(a.stop(), 0)

    def test_planted_symlink_is_not_followed(self):
        d = os.path.join(self.tmp.path, "run")
        os.mkdir(d, 0o700)
        victim = os.path.join(self.tmp.path, "victim")
        with open(victim, "w") as f:
            f.write("precious\n")
        os.symlink(victim, os.path.join(d, ".reload-status.tmp"))
        a = self.agent(d)
        try:
            wait_for(lambda: os.path.exists(os.path.join(d, "reload-status")), 5, what="the status published")
            with open(victim) as f:
                self.assertEqual(f.read(), "precious\n")
        finally:
            self.assertEqual(a.stop(), 0)


if __name__ == "__main__":
    unittest.main()
