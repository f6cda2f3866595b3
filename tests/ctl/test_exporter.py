#!/usr/bin/env python3
"""test_exporter.py: `hakmemctl metrics --listen` against a real hakmemd
(own --runtime-dir) with a real shim client, the exporter run as nobody:
GET and HEAD /metrics (Prometheus text that promcheck.py and, when
installed, `promtool check metrics` accept; hakmem_up 1; no per-process
series unless --per-process), 404 for other paths, 405 for other methods,
400 and 431 for broken or oversized requests, no request changes
anything, hakmemd stopped (hakmem_up 0, still 200) and started again
(hakmem_up 1, same exporter), clients trickling their requests (slowloris)
while a scraper is served, and a clean stop on SIGTERM and SIGINT. The
same exporter run as nobody with the metrics group (metrics_group, a group
of the test's own) reads metrics.sock, and answers every scrape with
hakmem_up 1 while an ordinary user (of the test's own: tests/security's
helpers and its sec_attack) floods control.sock.
Usage errors (exit 2) need no daemon. Needs root for the rest (exit 77)."""
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import ctltest as t
import promcheck

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "deploy"))
sys.path.insert(0, os.path.join(HERE, "..", "security"))
import metricnames  # noqa: E402
import sectest  # noqa: E402  (a user and a group of the test's own, removed at exit)

a = t.args()

# --- usage errors (no daemon needed) ------------------------------------------
for bad in ["9101", "127.0.0.1", "127.0.0.1:", "127.0.0.1:port", "::1:9101", "127.0.0.1:70000"]:
    r = t.run([a.hakmemctl, "metrics", "--listen", bad], timeout=30)
    t.expect(r, t.EXIT_USAGE, "--listen %s: usage error" % bad, err_has="--listen")
# A name that does not exist is a usage error when the resolver says so;
# where no resolver can be reached (a machine or VM without network) the
# resolver cannot say, and that is an error of the environment, named.
r = t.run([a.hakmemctl, "metrics", "--listen", "no.such.host.invalid:9101"], timeout=30)
if "Temporary failure in name resolution" in r.err:
    t.expect(r, t.EXIT_ERROR, "--listen no.such.host.invalid:9101 without a resolver: an error "
             "that says so", err_has="--listen no.such.host.invalid:9101")
else:
    t.expect(r, t.EXIT_USAGE, "--listen no.such.host.invalid:9101: usage error", err_has="--listen")
r = t.run([a.hakmemctl, "status", "--listen", "127.0.0.1:0"])
t.expect(r, t.EXIT_USAGE, "--listen with status: usage error", err_has="metrics only")
r = t.run([a.hakmemctl, "--json", "metrics", "--listen", "127.0.0.1:0"])
t.expect(r, t.EXIT_USAGE, "--listen with --json: usage error", err_has="--json")
r = t.run([a.hakmemctl, "metrics", "--help"])
t.expect(r, 0, "metrics --help names --listen and --per-process", out_has="--per-process")

t.need_daemon(a)
why = t.can_switch_user()
if why:
    t.skip(why)


class Exporter:
    """hakmemctl metrics --listen 127.0.0.1:0 as nobody (with the groups
    given, else none); port read from its log."""

    def __init__(self, ctl, run_dir, log_path, extra=(), groups=None):
        self.log_path = log_path
        self.log = open(log_path, "w")
        self.p = subprocess.Popen(sectest.NOBODY.wrap(
            [ctl, "--runtime-dir", run_dir, "--timeout", "2", "metrics", "--listen",
             "127.0.0.1:0"] + list(extra), groups),
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        self.port = None
        deadline = time.time() + 10
        while time.time() < deadline and self.p.poll() is None and not self.port:
            m = re.search(r"serving http://127\.0\.0\.1:(\d+)/metrics", self.text())
            self.port = int(m.group(1)) if m else None
            time.sleep(0.05)

    def text(self):
        with open(self.log_path) as f:
            return f.read()

    def stop(self, sig=signal.SIGTERM):
        rc = t.stop_process(self.p, sig, 5)
        self.log.close()
        return rc


def get(port, path="/metrics", method="GET", body=None, timeout=5):
    """(status, headers dict lower-case, body text)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    c.request(method, path, body=body)
    r = c.getresponse()
    data = r.read().decode()
    c.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, data


def raw(port, data, timeout=5):
    """Sends data as it is; what comes back until the exporter closes."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(data)
    out = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            out += b
    except OSError:
        pass
    s.close()
    return out.decode(errors="replace")


def up_value(text):
    m = re.search(r"^hakmem_up (\d+)$", text, re.M)
    return int(m.group(1)) if m else None


def refused_for_uid(text):
    """hakmem_control_refused_total{socket="control",reason="uid_limit"}, or 0."""
    m = re.search(r'^hakmem_control_refused_total\{socket="control",reason="uid_limit"\} (\d+)$',
                  text, re.M)
    return int(m.group(1)) if m else 0


def check_exposition(text, what):
    p = promcheck.problems(text)
    t.check(not p, what + ": promcheck.py", "\n".join(p[:20]))
    promtool = shutil.which("promtool")
    if promtool:
        pp = subprocess.run([promtool, "check", "metrics"], input=text, text=True,
                            capture_output=True)
        t.check(pp.returncode == 0, what + ": promtool check metrics", pp.stdout + pp.stderr)
    else:
        print("(promtool not installed: promcheck.py only; tools/setup.sh installs it)")


if not a.attack:
    t.skip("no --attack (tests/security's sec_attack) given")
mgroup = sectest.Group("fleet2m")
DAEMON_ARGS = ["--set", "metrics_group=" + mgroup.name]

with t.TempDir() as tmp:
    run_dir = os.path.join(tmp, "run")
    ctl = t.copy_for_nobody(a.hakmemctl, tmp)
    d = t.Daemon(a.hakmemd, run_dir, DAEMON_ARGS)
    cl = t.Clients()
    ex = ex2 = exm = flood = None
    try:
        client = cl.spawn(a.shim, run_dir)
        r, v = t.poll_json([a.hakmemctl, "--runtime-dir", run_dir, "--json", "clients"],
                           lambda v: any(c["pid"] == client.pid for c in v["clients"]))
        t.check(v is not None, "the shim client registered", repr(r))

        ex = Exporter(ctl, run_dir, os.path.join(tmp, "exporter.log"))
        t.check(ex.port is not None, "the exporter listens (as nobody) and logs its port", ex.text())
        if ex.port is None:
            raise SystemExit(t.done())
        with open("/proc/%d/status" % ex.p.pid) as f:
            uid = re.search(r"^Uid:\s+(\d+)", f.read(), re.M).group(1)
        t.check(uid == "65534", "the exporter runs as nobody (uid %s)" % uid)
        get(ex.port)
        t.check("hakmemd answers on %s/control.sock" % run_dir in ex.text(),
                "outside the metrics group it reads control.sock", ex.text())

        # --- GET and HEAD /metrics -------------------------------------------------
        st, h, body = get(ex.port)
        t.check(st == 200, "GET /metrics: 200", "%d %s" % (st, body[:300]))
        t.check(h.get("content-type") == "text/plain; version=0.0.4; charset=utf-8",
                "GET /metrics: Content-Type of the text format 0.0.4", str(h))
        t.check(h.get("content-length") == str(len(body.encode())), "GET /metrics: Content-Length")
        t.check(up_value(body) == 1, "GET /metrics: hakmem_up 1", body[-500:])
        t.check("hakmem_clients 1\n" in body, "GET /metrics: hakmemd's metrics (hakmem_clients 1)")
        t.check(re.search(r"^hakmem_scrape_duration_seconds [0-9.]+$", body, re.M) is not None,
                "GET /metrics: hakmem_scrape_duration_seconds")
        t.check('pid="' not in body, "GET /metrics: no per-process series by default")
        check_exposition(body, "GET /metrics")
        st, h, hbody = get(ex.port, method="HEAD")
        t.check(st == 200 and hbody == "" and int(h.get("content-length", "0")) > 0,
                "HEAD /metrics: 200, headers, no body", "%d %r %r" % (st, h, hbody))
        st, _, body = get(ex.port, "/metrics?name[]=x")
        t.check(st == 200 and up_value(body) == 1, "GET /metrics?query: 200")

        ex2 = Exporter(ctl, run_dir, os.path.join(tmp, "exporter2.log"), ["--per-process"])
        st, _, body = get(ex2.port) if ex2.port else (0, {}, "")
        t.check(st == 200 and ('pid="%d"' % client.pid) in body,
                "--per-process: the client's per-process series", body[:300])
        check_exposition(body, "--per-process")
        # the names tests/deploy checks alert rules and the dashboard with,
        # read from the sources, are those served
        live = dict(re.findall(r"^# TYPE (\S+) (\S+)$", body, re.M))
        known = metricnames.types(os.path.join(HERE, "..", ".."))
        t.check(live == known, "every metric served is one tests/deploy knows, of the same "
                "type, and back (%d)" % len(live),
                "served only: %s; known only: %s" % (sorted(set(live.items()) - set(known.items())),
                                                     sorted(set(known.items()) - set(live.items()))))
        ex2.stop()

        # --- everything else ------------------------------------------------------
        for path in ["/", "/metrics/", "/metricsx", "/debug/pprof", "/../etc/passwd"]:
            st, _, body = get(ex.port, path)
            t.check(st == 404, "GET %s: 404" % path, "%d %s" % (st, body))
        for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"]:
            st, h, body = get(ex.port, method=method, body="lean all on")
            t.check(st == 405 and h.get("allow") == "GET, HEAD", "%s /metrics: 405, Allow: GET, HEAD"
                    % method, "%d %r" % (st, h))
        out = raw(ex.port, b"garbage\r\n\r\n")
        t.check(out.startswith("HTTP/1.1 400 "), "a line that is not HTTP: 400", out[:200])
        out = raw(ex.port, b"GET /metrics HTTP/2.0\r\n\r\n")
        t.check(out.startswith("HTTP/1.1 400 "), "HTTP/2.0 request line: 400", out[:200])
        out = raw(ex.port, b"GET /metrics HTTP/1.1\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n")
        t.check(out.startswith("HTTP/1.1 431 "), "a request head over 8 KiB: 431", out[:200])
        r = t.run([a.hakmemctl, "--runtime-dir", run_dir, "--json", "status"])
        v = r.json() if r.rc == 0 else None
        t.check(v is not None and not any(c["override"] for c in v["cgroups"]),
                "after every request above, no override in hakmemd", repr(r)[:500])
        t.check("operator (uid" not in d.log_text(), "hakmemd logged no operator action")

        # --- hakmemd stops and comes back -----------------------------------------
        d.stop()
        st, _, body = get(ex.port)
        t.check(st == 200 and up_value(body) == 0, "hakmemd stopped: 200 with hakmem_up 0",
                "%d %s" % (st, body))
        check_exposition(body, "hakmemd stopped")
        t.check("does not answer" in ex.text(), "the exporter logs that hakmemd went away", ex.text())
        d = t.Daemon(a.hakmemd, run_dir, DAEMON_ARGS)
        deadline, body = time.time() + 10, ""
        while time.time() < deadline:
            st, _, body = get(ex.port)
            if up_value(body) == 1:
                break
            time.sleep(0.2)
        t.check(up_value(body) == 1 and ex.p.poll() is None,
                "hakmemd started again: hakmem_up 1 from the same exporter", body[-300:])
        t.check("hakmemd answers" in ex.text().split("does not answer")[-1],
                "the exporter logs that hakmemd is back", ex.text())

        # --- clients that trickle (slowloris) -------------------------------------
        N = 40  # more than the exporter's 16 connections
        stop = threading.Event()
        socks = []

        def trickle():
            for _ in range(N):
                s = socket.create_connection(("127.0.0.1", ex.port))
                s.sendall(b"GET /metr")
                socks.append(s)
            while not stop.is_set():
                for s in list(socks):
                    try:
                        s.send(b"i")
                    except OSError:
                        socks.remove(s)
                stop.wait(0.5)

        th = threading.Thread(target=trickle)
        th.start()
        time.sleep(1)
        slowest, fails = 0.0, 0
        for _ in range(10):
            t0 = time.time()
            try:
                st, _, body = get(ex.port, timeout=5)
                fails += st != 200 or up_value(body) != 1
            except OSError:
                fails += 1
            slowest = max(slowest, time.time() - t0)
            time.sleep(0.2)
        stop.set()
        th.join()
        t.check(fails == 0 and slowest < 2.0, "10 scrapes among %d trickling clients: all 200 "
                "with hakmem_up 1, slowest %.2f s" % (N, slowest), "%d failed" % fails)
        for s in socks:
            s.close()

        # a client that starts a request and stops: 408 and closed after 5 s
        s = socket.create_connection(("127.0.0.1", ex.port), timeout=15)
        s.sendall(b"GET /metrics HTTP/1.1\r\n")
        t0, out = time.time(), b""
        try:
            while True:
                b = s.recv(4096)
                if not b:
                    break
                out += b
        except OSError:
            pass
        waited = time.time() - t0
        s.close()
        t.check(out.startswith(b"HTTP/1.1 408 ") and 4 <= waited < 8,
                "an unfinished request: 408 and closed after %.1f s" % waited, repr(out[:100]))
        # a client that connects and says nothing: closed after 5 s
        s = socket.create_connection(("127.0.0.1", ex.port), timeout=15)
        t0 = time.time()
        try:
            got = s.recv(4096)
        except OSError:
            got = b"?"
        waited = time.time() - t0
        s.close()
        t.check(got == b"" and 4 <= waited < 8, "a silent client: closed after %.1f s" % waited)

        # 16 scrapers at once
        res = []

        def one():
            try:
                res.append(get(ex.port)[0])
            except OSError as e:
                res.append(str(e))

        ths = [threading.Thread(target=one) for _ in range(16)]
        for x in ths:
            x.start()
        for x in ths:
            x.join()
        t.check(res == [200] * 16, "16 scrapes at once: all 200", str(res))

        # --- the metrics group: metrics.sock, while a user floods control.sock -----
        exm = Exporter(ctl, run_dir, os.path.join(tmp, "exporter-m.log"), groups=[mgroup.gid])
        st, _, body = get(exm.port) if exm.port else (0, {}, "")
        t.check(st == 200 and up_value(body) == 1
                and "hakmemd answers on %s/metrics.sock" % run_dir in exm.text(),
                "as nobody in the metrics group (%s) it reads metrics.sock" % mgroup.name,
                exm.text())
        refused0 = refused_for_uid(body)
        user = sectest.User("fleet2")
        attack = sectest.copy_for(user, a.attack, tmp)
        flood = sectest.spawn_as(user, [attack, "ctl-flood", run_dir, "control.sock", "200", "8"])
        time.sleep(0.5)                 # the flood in place
        good, slowest = 0, 0.0
        for _ in range(10):
            t0 = time.time()
            try:
                st, _, body = get(exm.port, timeout=5)
                good += st == 200 and up_value(body) == 1
            except OSError:
                pass
            slowest = max(slowest, time.time() - t0)
            time.sleep(0.3)
        refused = refused_for_uid(body) - refused0
        flood.wait(30)
        kv = sectest.parse_kv(flood.stdout.read())
        flood = None
        t.check(good == 10, "%d/10 scrapes with hakmem_up 1 while user %s floods control.sock "
                "(200 connections held and reopened), slowest %.2f s" % (good, user.name, slowest),
                exm.text())
        t.check(refused > 0, "the flood was shed: hakmemd refused %d control.sock connections over "
                "the user's share (hakmem_control_refused_total); the flooder saw %s refusals"
                % (refused, kv.get("refused_with_reason", ["?"])[0]))
        t.check("does not answer" not in exm.text(), "the exporter never lost hakmemd", exm.text())

        # --- stop -----------------------------------------------------------------
        t0 = time.time()
        rc = ex.stop(signal.SIGTERM)
        t.check(rc == 0 and time.time() - t0 < 2 and "stopping (SIGTERM)" in ex.text(),
                "SIGTERM: exit 0 at once", "rc %r; %s" % (rc, ex.text()))
        ex = Exporter(ctl, run_dir, os.path.join(tmp, "exporter3.log"))
        rc = ex.stop(signal.SIGINT)
        t.check(rc == 0 and "stopping (SIGINT)" in ex.text(), "SIGINT: exit 0", ex.text())
        ex = None
    finally:
        if flood:
            sectest.stop(flood)
        for e in (ex, ex2, exm):
            if e:
                e.stop()
        cl.end()
        d.stop()

t.done()
