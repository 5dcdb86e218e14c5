#!/usr/bin/env python3
"""The shipped systemd unit, checked offline (systemd need not be PID 1):

- `systemd-analyze security --offline=yes packaging/redpulse.service`:
  overall exposure at most MAX_EXPOSURE;
- `systemd-analyze verify` clean (no output, exit 0) on the unit as
  `cmake --install` installs it into a scratch prefix, so that ExecStart=
  names a binary that exists and Documentation= man pages that man(1) finds
  (MANPATH pointed at the installed ones);
- the settings the daemon relies on are there;
- a second `cmake --install` keeps an edited configuration.

Usage: check_unit.py SOURCE_DIR BUILD_DIR
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

MAX_EXPOSURE = 2.0
REQUIRED = [
    r"^Type=notify$",
    r"^WatchdogSec=\d+s$",
    r"^StateDirectory=redpulse$",
    r"^DynamicUser=yes$",
    r"^RuntimeDirectory=redpulse$",
    r"^ExecReload=/usr/sbin/redpulse --reload \$MAINPID$",
    r"^ExecStart=/usr/sbin/redpulse --config /etc/redpulse/redpulse.json$",
    r"^WantedBy=multi-user.target$",
    # the advisor's host checks read /proc/PID of redis-server, another user:
    # "invisible" hid it (review), and with it every host check
    r"^ProtectProc=default$",
    # the bcrypt workers lower their priority (auth.c): @resources is denied,
    # setpriority allowed back after it
    r"^SystemCallFilter=setpriority$",
]


def main():
    src, build = sys.argv[1], sys.argv[2]
    unit = os.path.join(src, "packaging", "redpulse.service")
    fails = []
    if not shutil.which("systemd-analyze"):
        print("FAIL: systemd-analyze is missing (Debian package systemd; packaging/deps.sh installs it)")
        return 1

    with open(unit) as f:
        text = f.read()
    for pat in REQUIRED:
        if not re.search(pat, text, re.M):
            fails.append("the unit lacks a line matching %s" % pat)

    r = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--no-pager", unit],
                       capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for \S+: ([\d.]+)", r.stdout + r.stderr)
    if not m:
        fails.append("no exposure level in systemd-analyze security output:\n%s%s" % (r.stdout, r.stderr))
    else:
        exposure = float(m.group(1))
        print("exposure %.1f (limit %.1f)" % (exposure, MAX_EXPOSURE))
        if exposure > MAX_EXPOSURE:
            fails.append("exposure %.1f > %.1f; what is still open:\n%s" % (
                exposure, MAX_EXPOSURE, "\n".join(l for l in r.stdout.splitlines() if "\u2717" in l)))

    with tempfile.TemporaryDirectory(prefix="redpulse-unit-") as tmp:
        prefix = os.path.join(tmp, "usr")
        r = subprocess.run(["cmake", "--install", build, "--prefix", prefix],
                           capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            fails.append("cmake --install failed:\n%s%s" % (r.stdout, r.stderr))
        else:
            installed = os.path.join(prefix, "lib", "systemd", "system", "redpulse.service")
            with open(installed) as f:
                body = f.read()
            if "ExecStart=%s/sbin/redpulse --config %s/etc/redpulse/redpulse.json" % (prefix, prefix) not in body:
                fails.append("the installed unit does not name the installed binary and config:\n" + body)
            env = dict(os.environ, MANPATH=os.path.join(prefix, "share", "man"), SYSTEMD_LOG_COLOR="0")
            r = subprocess.run(["systemd-analyze", "verify", "--no-pager", installed],
                               capture_output=True, text=True, env=env, timeout=60)
            out = (r.stdout + r.stderr).strip()
            print("verify: exit %d%s" % (r.returncode, ", no output" if not out else ""))
            if r.returncode != 0 or out:
                fails.append("systemd-analyze verify is not clean (exit %d):\n%s" % (r.returncode, out))
            # installing again keeps an operator's configuration
            conf = os.path.join(prefix, "etc", "redpulse", "redpulse.json")
            with open(conf, "a") as f:
                f.write("\n")
            r = subprocess.run(["cmake", "--install", build, "--prefix", prefix],
                               capture_output=True, text=True, timeout=120)
            with open(conf) as f:
                kept = f.read().endswith("}\n\n")
            if r.returncode != 0 or not kept or not os.path.exists(conf + ".default"):
                fails.append("a second cmake --install did not keep the edited configuration "
                             "(and put the default beside it):\n" + r.stdout + r.stderr)

    for f in fails:
        print("FAIL: " + f)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
