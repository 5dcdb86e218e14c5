#!/usr/bin/env python3
"""The Debian package, end to end, on this machine (root, systemd not PID 1):

build it with cpack from the build tree; inspect it (contents, control
fields, conffiles, maintainer scripts, Depends against the binary's NEEDED
libraries as ldd resolves them); lintian (no error, warnings only those the
docs/packaging.md accepts); install it with dpkg (enabled the Debian way, silent and
nothing started without systemd); run the INSTALLED binary, as the
installed unit's ExecStart= says, as an unprivileged user, with the
installed default configuration (only the Redis and HTTP ports moved to
free ones) against a real redis-server, scrape it; install again over an
edited conffile (kept); remove (conffile kept) and purge (nothing left,
state directory included).

Usage: test_package.py SOURCE_DIR BUILD_DIR
Safe to run again: a redpulse package left by an interrupted run is purged
first. Exit 77 (CTest: skipped) when not root or a tool is missing, unless
CI=true, where that fails.
"""
import glob
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from harness import RedisServer, Tmp, free_port, parse_prom, wait_for  # noqa: E402

SRC, BUILD = (os.path.abspath(a) for a in sys.argv[1:3])
CI = os.environ.get("CI") == "true"
PKG = "redpulse"
UNIT = "/lib/systemd/system/redpulse.service"
CONF = "/etc/redpulse/redpulse.json"
BIN = "/usr/sbin/redpulse"
# what the package, systemd and deb-systemd-helper create: all gone after purge
LEFTOVERS = ["/usr/share/redpulse", "/usr/share/doc/redpulse",
             "/etc/systemd/system/multi-user.target.wants/redpulse.service",
             "/etc/systemd/system/redpulse.service",
             "/var/lib/systemd/deb-systemd-helper-enabled/redpulse.service.dsh-also",
             "/var/lib/systemd/deb-systemd-helper-enabled/multi-user.target.wants/redpulse.service",
             "/var/lib/systemd/deb-systemd-helper-masked/redpulse.service",
             "/var/lib/private/redpulse", "/var/lib/redpulse", "/etc/redpulse"]


T0 = time.monotonic()


def step(msg):
    print("== %5.1fs %s" % (time.monotonic() - T0, msg), flush=True)


def run(argv, check=True, **kw):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=kw.pop("timeout", 120), **kw)
    if check and r.returncode != 0:
        raise AssertionError("%s: exit %d\n%s%s" % (" ".join(argv), r.returncode, r.stdout, r.stderr))
    return r


def dpkg(*args):
    """dpkg, waiting for its lock when another apt/dpkg holds it."""
    end = time.monotonic() + 120
    while True:
        r = run(["dpkg"] + list(args), check=False)
        if r.returncode == 0 or "lock" not in r.stderr or time.monotonic() > end:
            return r
        time.sleep(1)


def installed():
    r = run(["dpkg-query", "-W", "-f", "${Status}", PKG], check=False)
    status = r.stdout.strip()
    return "not-installed" if r.returncode != 0 or status.endswith("not-installed") else status


def skip_or_fail(why):
    if CI:
        print("FAIL: " + why)
        sys.exit(1)
    print("SKIPPED: " + why + " (under CI=true this fails)")
    sys.exit(77)


def accepted_lintian_tags():
    """The warnings docs/packaging.md accepts, between the LINTIAN-ACCEPTED markers."""
    with open(os.path.join(SRC, "docs", "packaging.md")) as f:
        m = re.search(r"<!-- LINTIAN-ACCEPTED:BEGIN -->(.*?)<!-- LINTIAN-ACCEPTED:END -->", f.read(), re.S)
    assert m, "docs/packaging.md has no LINTIAN-ACCEPTED list"
    return set(re.findall(r"^\| `([\w-]+)` \|", m.group(1), re.M))


def build_package(out):
    step("cpack -G DEB from %s" % BUILD)
    r = run(["cpack", "-G", "DEB", "--config", os.path.join(BUILD, "CPackConfig.cmake"), "-B", out],
            cwd=BUILD, timeout=300)
    debs = glob.glob(os.path.join(out, "*.deb"))
    assert len(debs) == 1, (debs, r.stdout)
    return debs[0]


def inspect(deb):
    step("inspect %s" % os.path.basename(deb))
    f = {k: run(["dpkg-deb", "-f", deb, k]).stdout.strip()
         for k in ("Package", "Version", "Architecture", "Depends", "Maintainer", "Description", "Section")}
    with open(os.path.join(SRC, "CMakeLists.txt")) as cm:
        version = re.search(r"project\(\s*redpulse\s+VERSION\s+([\d.]+)", cm.read()).group(1)
    assert f["Package"] == PKG, f
    assert f["Version"] == version + "-1", f
    assert f["Architecture"] == run(["dpkg", "--print-architecture"]).stdout.strip(), f
    assert f["Maintainer"] and f["Section"] and "\n" in f["Description"], f
    contents = run(["dpkg-deb", "--contents", deb]).stdout
    paths = {line.split()[5].lstrip(".") for line in contents.splitlines()}
    for p in (BIN, UNIT, CONF, "/usr/share/man/man8/redpulse.8.gz", "/usr/share/man/man5/redpulse.json.5.gz",
              "/usr/share/doc/redpulse/copyright", "/usr/share/doc/redpulse/changelog.Debian.gz",
              "/usr/share/redpulse/dashboards/prometheus.yml"):
        assert p in paths, "%s not in the package:\n%s" % (p, contents)
    for d in ("dashboards", "rules"):
        for src in glob.glob(os.path.join(SRC, d, "**", "*"), recursive=True):
            if os.path.isfile(src):
                rel = os.path.relpath(src, SRC)
                assert "/usr/share/redpulse/" + rel in paths, "%s not packaged" % rel
    assert not any(p.startswith("/usr/local") for p in paths), contents
    for line in contents.splitlines():
        mode, owner = line.split()[:2]
        assert owner == "root/root", line
        assert not (mode[0] == "d" and mode != "drwxr-xr-x"), line
    with tempfile.TemporaryDirectory() as ctl:
        run(["dpkg-deb", "--control", deb, ctl])
        with open(os.path.join(ctl, "conffiles")) as c:
            assert c.read().split() == [CONF], "conffiles must list exactly " + CONF
        for s in ("postinst", "prerm", "postrm"):
            assert os.access(os.path.join(ctl, s), os.X_OK), s + " missing or not executable"
            run(["sh", "-n", os.path.join(ctl, s)])
    with tempfile.TemporaryDirectory() as root:
        run(["dpkg-deb", "-x", deb, root])
        with open(root + UNIT) as u:
            unit = u.read()
        assert "ExecStart=%s --config %s\n" % (BIN, CONF) in unit, unit
        with gzip.open(root + "/usr/share/doc/redpulse/changelog.Debian.gz", "rt") as c:
            top = c.readline()
        assert top.startswith("redpulse (%s) " % f["Version"]), \
            "packaging/changelog's latest entry is not the package's version %s: %s" % (f["Version"], top)
    print("  %s %s, Depends: %s" % (f["Package"], f["Version"], f["Depends"]))
    return f


def check_depends(depends):
    """Every library the binary NEEDs is in Depends by its package, and
    every Depends entry is one of those."""
    step("Depends against readelf NEEDED + ldd + dpkg -S")
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", run(["readelf", "-d", BIN]).stdout)
    assert needed, "no NEEDED entries in " + BIN
    where = {}
    for line in run(["ldd", BIN]).stdout.splitlines():
        m = re.match(r"\s*(\S+) => (\S+)", line)
        if m:
            where[m.group(1)] = m.group(2)
    dep_pkgs = {re.split(r"[\s(:]", d.strip())[0] for d in depends.split(",")}
    # one dpkg -S for every spelling of every path (usrmerge: /lib is /usr/lib)
    cands = {}
    for lib in needed:
        assert lib in where, "ldd cannot resolve NEEDED %s" % lib
        c = {where[lib], os.path.realpath(where[lib])}
        c |= {p.replace("/usr/lib/", "/lib/", 1) for p in c} | {p.replace("/lib/", "/usr/lib/", 1) for p in c}
        cands[lib] = c
    owner_of = {}
    r = run(["dpkg", "-S"] + sorted(set().union(*cands.values())), check=False)
    for line in r.stdout.splitlines():
        pkgs, path = line.rsplit(": ", 1)
        owner_of[path.strip()] = pkgs.split(",")[0].split(":")[0].strip()
    owners = set()
    for lib in needed:
        owner = next((owner_of[p] for p in sorted(cands[lib]) if p in owner_of), None)
        assert owner, "no package owns %s (%s)" % (lib, where[lib])
        owners.add(owner)
        assert owner in dep_pkgs, "%s comes from %s, which Depends lacks: %s" % (lib, owner, depends)
    extra = dep_pkgs - owners
    assert not extra, "Depends names packages the binary does not need: %s" % extra
    print("  %d NEEDED libraries from %d packages, all in Depends" % (len(needed), len(owners)))


def lintian(deb):
    step("lintian")
    r = run(["lintian", "--tag-display-limit", "0", deb], check=False, timeout=300)
    out = [ln for ln in (r.stdout + r.stderr).splitlines() if re.match(r"^[EWIXNP]: ", ln)]
    print("\n".join("  " + ln for ln in out) or "  (nothing)")
    accepted = accepted_lintian_tags()
    errors = [ln for ln in out if ln.startswith("E: ")]
    unaccepted = [ln for ln in out if ln.startswith("W: ") and ln.split()[2] not in accepted]
    assert not errors, "lintian errors:\n" + "\n".join(errors)
    assert not unaccepted, "lintian warnings not accepted in docs/packaging.md:\n" + "\n".join(unaccepted)
    # 2: lintian itself failed (an unreadable package, a crash in a check)
    assert r.returncode in (0, 1), "lintian exit %d:\n%s" % (r.returncode, r.stderr)


def install(deb):
    step("dpkg -i")
    r = dpkg("-i", deb)
    assert r.returncode == 0, r.stdout + r.stderr
    assert installed() == "install ok installed", installed()
    # without systemd as PID 1 the maintainer scripts say nothing but what
    # deb-systemd-helper always says when it enables a unit
    noise = [ln for ln in r.stderr.splitlines() if ln.strip() and not ln.startswith("Created symlink ")]
    assert not noise, "dpkg -i wrote to stderr:\n" + r.stderr
    for p in (BIN, UNIT, CONF, "/usr/share/man/man8/redpulse.8.gz"):
        assert os.path.exists(p), p
    # and started nothing (no service manager to start it under)
    if not os.path.isdir("/run/systemd/system"):
        running = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                if os.readlink("/proc/%s/exe" % pid) == BIN:
                    running.append(pid)
            except OSError:
                pass
        assert not running, "postinst started %s without systemd: pids %s" % (BIN, running)
    # enabled the Debian way, for the next boot with systemd
    link = "/etc/systemd/system/multi-user.target.wants/redpulse.service"
    assert os.path.islink(link) and os.readlink(link) == UNIT, "postinst did not enable the unit"
    assert os.path.exists("/var/lib/systemd/deb-systemd-helper-enabled/redpulse.service.dsh-also")
    r = run(["man", "-w", "redpulse.json"], check=False)
    assert r.returncode == 0 and "/usr/share/man/man5/redpulse.json.5.gz" in r.stdout, r.stdout + r.stderr


def run_installed(tmp):
    step("the installed binary, with the installed default config, against a real redis-server")
    r = run([BIN, "--check-config", CONF])
    assert r.stdout.startswith("configuration OK (1 instance)"), r.stdout
    with open(CONF) as f:
        cfg = json.load(f)
    # the default polls 127.0.0.1:6379 and listens on 127.0.0.1:10379: the
    # same configuration, with free ports (this machine may run a Redis on
    # 6379 and other agents)
    assert cfg["instances"][0]["address"] == "redis://127.0.0.1:6379", cfg
    redis = RedisServer(tmp, "r")
    http = free_port()
    cfg["instances"][0]["address"] = "redis://127.0.0.1:%d" % redis.port
    cfg["listen"] = "127.0.0.1:%d" % http
    path = os.path.join(tmp, "redpulse.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    os.chmod(tmp, 0o755)
    os.chmod(path, 0o644)
    # ExecStart= of the installed unit, with that file, as nobody (the unit
    # runs it as a dynamic user)
    with open(UNIT) as u:
        exec_start = re.search(r"^ExecStart=(.*)$", u.read(), re.M).group(1).split()
    assert exec_start[0] == BIN and CONF in exec_start, exec_start
    argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] + \
        [path if a == CONF else a for a in exec_start]
    log = open(os.path.join(tmp, "agent.log"), "w")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        import urllib.request

        def scrape():
            with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % http, timeout=5) as resp:
                return parse_prom(resp.read().decode())

        def up():
            assert proc.poll() is None, "redpulse exited %s" % proc.returncode
            m = scrape()
            return m if m.get(("redis_up", (("target", "local"),))) == 1 else None

        m = wait_for(up, 15, what="redis_up{target=\"local\"} 1 from the installed binary")
        cmds = [v for (n, _), v in m.items() if n == "redis_commands_processed_total"]
        assert cmds and cmds[0] >= 1, "no redis_commands_processed_total"
        info = redis.client().info("server")
        assert "redis_version" in info
        print("  scraped %d series; redis_up 1" % len(m))
    finally:
        proc.terminate()
        rc = proc.wait(15)
        log.close()
        redis.stop()
    with open(os.path.join(tmp, "agent.log")) as f:
        text = f.read()
    assert rc == 0, "installed redpulse exited %d on SIGTERM:\n%s" % (rc, text)


def reinstall(deb):
    step("dpkg -i again (the upgrade path of the scripts): an edited conffile stays, the unit stays enabled")
    with open(CONF, "a") as f:  # an administrator's change
        f.write("\n")
    r = dpkg("-i", deb)
    assert r.returncode == 0, r.stdout + r.stderr
    noise = [ln for ln in r.stderr.splitlines() if ln.strip() and not ln.startswith("Created symlink ")]
    assert not noise, "dpkg -i wrote to stderr:\n" + r.stderr
    with open(CONF) as f:
        assert f.read().endswith("}\n\n"), "the reinstall replaced the edited " + CONF
    assert os.path.islink("/etc/systemd/system/multi-user.target.wants/redpulse.service")


def remove_and_purge(files):
    step("dpkg -r: the conffile stays")
    r = dpkg("-r", PKG)
    assert r.returncode == 0 and not r.stderr.strip(), r.stdout + r.stderr
    assert installed().endswith("config-files"), installed()
    assert os.path.exists(CONF), "remove deleted the conffile"
    assert not os.path.exists(BIN) and not os.path.exists(UNIT)
    # what systemd leaves for StateDirectory=redpulse under DynamicUser=yes
    os.makedirs("/var/lib/private/redpulse", exist_ok=True)
    with open("/var/lib/private/redpulse/state.json", "w") as f:
        f.write("{}")
    if not os.path.lexists("/var/lib/redpulse"):
        os.symlink("private/redpulse", "/var/lib/redpulse")
    step("dpkg -P: nothing left")
    r = dpkg("-P", PKG)
    assert r.returncode == 0 and not r.stderr.strip(), r.stdout + r.stderr
    assert installed() == "not-installed", installed()
    left = [p for p in files + LEFTOVERS if os.path.lexists(p)]
    assert not left, "left after purge: %s" % left


def main():
    if os.geteuid() != 0:
        skip_or_fail("installing a package needs root")
    for tool in ("cpack", "dpkg-deb", "dpkg-shlibdeps", "lintian", "readelf", "ldd", "setpriv", "man",
                 "deb-systemd-helper", "redis-server"):
        if not shutil.which(tool):
            skip_or_fail("%s is missing (packaging/deps.sh installs it)" % tool)
    if os.path.isdir("/run/systemd/system"):
        print("note: systemd is PID 1 here: the package will also start the service")
    if installed() != "not-installed":
        print("note: purging the redpulse package left by an earlier run (%s)" % installed())
        r = dpkg("-P", PKG)
        assert r.returncode == 0, r.stdout + r.stderr
    tmp = Tmp()
    try:
        out = os.path.join(tmp.path, "deb")
        deb = build_package(out)
        fields = inspect(deb)
        lintian(deb)
        contents = run(["dpkg-deb", "--contents", deb]).stdout
        files = [ln.split()[5].lstrip(".") for ln in contents.splitlines() if not ln.startswith("d")]
        install(deb)
        check_depends(fields["Depends"])
        run_installed(tmp.path)
        reinstall(deb)
        remove_and_purge(files)
    finally:
        if installed() != "not-installed":
            dpkg("-P", PKG)
        tmp.cleanup()
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
