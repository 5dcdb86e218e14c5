# packaging/deps.sh - sourced by quickstart.sh and tests/run.sh: installs the
# Debian 12 packages redpulse needs to build (and, for "test", to run the
# test suite), only those that are missing. Uses sudo when not root.

redpulse_missing_pkgs() {
    local p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || printf '%s ' "$p"
    done
}

redpulse_install_deps() {
    local pkgs=(gcc make cmake pkg-config libhiredis-dev libevent-dev libmicrohttpd-dev libcjson-dev
                zlib1g-dev libdeflate-dev libssl-dev libgnutls28-dev libcrypt-dev redis-server)
    pkgs+=(libcurl4-openssl-dev) # alert delivery (issue 10)
    if [ "${1:-}" = test ]; then
        # check: unit tests; prometheus: promtool and a real server for the
        # compatibility test; python3 and openssl: integration harness;
        # redis-tools: redis-benchmark as a CPU load; slowhttptest: slow
        # client attacks on the HTTP endpoint; clang and its runtime:
        # libFuzzer
        pkgs+=(check prometheus python3 openssl redis-tools slowhttptest clang libclang-rt-14-dev)
        # the package and its checks: systemd-analyze (security, verify),
        # man-db (man pages render cleanly), dpkg-dev and file (cpack's
        # dpkg-shlibdeps), init-system-helpers (deb-systemd-helper), lintian
        pkgs+=(systemd man-db dpkg-dev file init-system-helpers lintian)
        # python3-yaml, python3-jsonschema: the dashboard and rule linter
        # reads the rule files; the dashboards are checked against Grafana's schema
        pkgs+=(python3-yaml python3-jsonschema)
        pkgs+=(prometheus-alertmanager) # alert delivery tests (issue 10)
        pkgs+=(gdb) # holds the agent at a point of its start to signal it there
    fi
    local missing
    missing=$(redpulse_missing_pkgs "${pkgs[@]}")
    [ -z "$missing" ] && return 0
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo=sudo
    echo "installing: $missing" >&2
    $sudo apt-get update -qq
    # shellcheck disable=SC2086 # word splitting of the package list is intended
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing >&2
}
