#!/usr/bin/env python3
"""test_install.py: deploy/Containerfile's build stage, run in a plain
build directory (no image can be built or pulled here), and the install it
makes, used as a program that links hakmem would use it.

1. The build stage's RUN lines that call meson or ninja are run as written,
   with /src the source tree, /build and /out temporary directories.
2. Every `COPY --from=build /out/...` source of the final stage exists.
3. The final stage's apt-get installs no compiler and no -dev package, and
   every shared library the installed hakmemd, hakmemctl and libhakmem.so
   need belongs to libc6 or to a package the final stage installs (or one
   of their Depends).
4. The final stage's groupadd lines, run with --prefix on a temporary
   root (Debian's base /etc/group and /etc/gshadow of root and nogroup),
   make their group with its gid (needs root; said when skipped).
5. pkg-config --cflags --libs hakmem, with PKG_CONFIG_PATH and
   PKG_CONFIG_SYSROOT_DIR on the DESTDIR, builds prog.c; it runs on the
   installed libhakmem.so (ldd shows that one) and hakmem's counters say
   that it served the allocations.
Skips (exit 77) without pkg-config or a C compiler."""
import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

ap = argparse.ArgumentParser()
ap.add_argument("--source-root", required=True)
ap.add_argument("--prog", required=True)
ap.add_argument("--version", required=True)
a = ap.parse_args()

failures = checks = 0


def check(cond, what, detail=""):
    global failures, checks
    checks += 1
    print(("ok   " if cond else "FAIL ") + what + ("" if cond or not detail else ": " + detail))
    failures += not cond
    return cond


def skip(why):
    print("SKIP: " + why)
    sys.exit(77)


cc = shutil.which("cc") or shutil.which("gcc")
if not shutil.which("pkg-config") or not cc:
    skip("pkg-config and a C compiler are needed")

# --- the Containerfile, as stages of instructions ------------------------------------
text = open(os.path.join(a.source_root, "deploy", "Containerfile")).read()
text = re.sub(r"\\\n", " ", text)  # continuation lines
stages = []
for line in text.splitlines():
    line = line.strip()
    if not line or line.startswith("#"):
        continue
    word, _, rest = line.partition(" ")
    word = word.upper()
    if word == "FROM":
        stages.append({"from": rest, "run": [], "copy": []})
    elif word == "RUN":
        stages[-1]["run"].append(rest)
    elif word == "COPY":
        stages[-1]["copy"].append(shlex.split(rest))
check(len(stages) == 2 and "AS build" in stages[0]["from"] and stages[1]["from"].startswith("debian:12"),
      "Containerfile: a build stage and a final stage on Debian 12", str([s["from"] for s in stages]))
build, final = stages[0], stages[-1]

tmp = tempfile.mkdtemp(prefix="hkinst.")
try:
    paths = {"/src": a.source_root, "/build": os.path.join(tmp, "build"),
             "/out": os.path.join(tmp, "out")}

    def local(word):
        for k, v in paths.items():
            if word == k or word.startswith(k + "/"):
                return v + word[len(k):]
            if "=" in word and word.split("=", 1)[1] == k:
                return word.split("=", 1)[0] + "=" + v
        return word

    # 1. the build stage's meson and ninja commands
    ran = 0
    for cmd in build["run"]:
        words = shlex.split(cmd)
        env = dict(os.environ)
        while words and re.match(r"^[A-Z_]+=", words[0]):
            k, v = local(words.pop(0)).split("=", 1)
            env[k] = v
        if not words or words[0] not in ("meson", "ninja"):
            continue
        words = [local(w) for w in words]
        p = subprocess.run(words, env=env, capture_output=True, text=True)
        ran += 1
        if not check(p.returncode == 0, "build stage: %s" % cmd, (p.stdout + p.stderr)[-3000:]):
            sys.exit(1)
    check(ran >= 3, "build stage: meson setup, ninja, meson install (%d commands)" % ran)

    # 2. what the final stage copies
    out = paths["/out"]
    installed = []
    for c in final["copy"]:
        src = [w for w in c if w.startswith("/out/")]
        if not src:
            continue
        f = local(src[0])
        installed.append(f)
        check(os.path.isfile(f), "final stage copies %s: installed" % src[0])
    check(len(installed) >= 5, "final stage copies the daemon, the CLI, the library, header, .pc")

    # 3. no compiler in the final stage; its packages give every library needed
    pkgs = []
    for cmd in final["run"]:
        m = re.search(r"apt-get install ([^&|;]*)", cmd)
        if m:
            pkgs += [w for w in m.group(1).split() if not w.startswith("-")]
    bad = [p for p in pkgs if p.endswith("-dev") or p in ("gcc", "clang", "llvm", "cpp", "meson",
                                                          "ninja-build", "bpftool", "make")]
    check(pkgs and not bad, "final stage installs %s: no compiler, no -dev package"
          % " ".join(pkgs), " ".join(bad))
    allowed = set(pkgs) | {"libc6", "libgcc-s1"}
    for p in pkgs:
        q = subprocess.run(["dpkg-query", "-W", "-f=${Depends}", p], capture_output=True, text=True)
        allowed |= {d.split()[0].split(":")[0] for d in re.split(r"[,|]", q.stdout) if d.strip()}
    for f in installed:
        if open(f, "rb").read(4) != b"\x7fELF":
            continue
        env = dict(os.environ, LD_LIBRARY_PATH=os.path.join(out, "usr", "lib"))
        ldd = subprocess.run(["ldd", f], capture_output=True, text=True, env=env).stdout
        for lib in re.findall(r"=> (/\S+)", ldd):
            if lib.startswith(out):
                continue
            real = os.path.realpath(lib)
            owner = ""
            for cand in (lib, real, re.sub(r"^/lib/", "/usr/lib/", real)):
                q = subprocess.run(["dpkg", "-S", cand], capture_output=True, text=True)
                if q.returncode == 0:
                    owner = q.stdout.split(":")[0]
                    break
            check(owner in allowed, "%s needs %s, from %s, which the final stage has"
                  % (os.path.basename(f), os.path.basename(lib), owner or "?"),
                  "allowed: %s" % sorted(allowed))

    # 4. the groups the final stage makes
    groupadds = [c for c in final["run"] if re.match(r"groupadd\b", c)]
    if os.geteuid() != 0 or not shutil.which("groupadd"):
        print("(the final stage's groupadd lines not run: needs root and groupadd)")
    for cmd in groupadds:
        if os.geteuid() != 0 or not shutil.which("groupadd"):
            break
        root = os.path.join(tmp, "groot")
        os.makedirs(os.path.join(root, "etc"), exist_ok=True)
        with open(os.path.join(root, "etc", "group"), "w") as f:
            f.write("root:x:0:\nnogroup:x:65534:\n")
        with open(os.path.join(root, "etc", "gshadow"), "w") as f:
            f.write("root:*::\nnogroup:*::\n")
        words = shlex.split(cmd)
        p = subprocess.run([words[0], "--prefix", root] + words[1:], capture_output=True, text=True)
        gid, name = words[words.index("--gid") + 1], words[-1]
        with open(os.path.join(root, "etc", "group")) as f:
            made = "%s:x:%s:\n" % (name, gid) in f.read()
        check(p.returncode == 0 and made, "final stage: %s makes %s with gid %s" % (cmd, name, gid),
              p.stderr)
    check(groupadds, "final stage makes the group of metrics.sock")

    # 5. pkg-config against the DESTDIR, and a program built with it
    pcdirs = [os.path.dirname(p) for p in installed if p.endswith("/hakmem.pc")]
    env = dict(os.environ, PKG_CONFIG_PATH=":".join(pcdirs), PKG_CONFIG_SYSROOT_DIR=out)
    env.pop("PKG_CONFIG_LIBDIR", None)
    mv = subprocess.run(["pkg-config", "--modversion", "hakmem"], env=env, capture_output=True,
                        text=True)
    check(mv.returncode == 0 and mv.stdout.strip() == a.version,
          "pkg-config --modversion hakmem: %s" % a.version, mv.stdout + mv.stderr)
    pc = subprocess.run(["pkg-config", "--cflags", "--libs", "hakmem"], env=env, capture_output=True,
                        text=True)
    flags = shlex.split(pc.stdout)
    check(pc.returncode == 0 and "-lhakmem" in flags
          and all(f.startswith(("-I" + out, "-L" + out)) for f in flags if f[:2] in ("-I", "-L")),
          "pkg-config --cflags --libs hakmem: %s" % pc.stdout.strip(), pc.stderr)
    exe = os.path.join(tmp, "prog")
    b = subprocess.run([cc, "-O2", "-Wall", "-Werror", a.prog, "-o", exe] + flags,
                       capture_output=True, text=True)
    check(b.returncode == 0, "prog.c builds with those flags", b.stdout + b.stderr)
    if b.returncode == 0:
        libdir = [f[2:] for f in flags if f.startswith("-L")][0]
        renv = {k: v for k, v in os.environ.items() if not k.startswith("HAKMEM_")}
        renv.update(LD_LIBRARY_PATH=libdir, HAKMEM_DAEMON="0")
        renv.pop("LD_PRELOAD", None)
        ldd = subprocess.run(["ldd", exe], env=renv, capture_output=True, text=True).stdout
        check(re.search(r"libhakmem\.so\.0 => %s/libhakmem\.so\.0" % re.escape(libdir), ldd)
              is not None, "prog links the installed libhakmem.so.0", ldd)
        r = subprocess.run([exe], env=renv, capture_output=True, text=True)
        got = dict(l.split() for l in r.stdout.splitlines() if len(l.split()) == 2)
        check(r.returncode == 0 and int(got.get("superslabs_live", 0)) >= 1
              and int(got.get("bytes_in_use", 0)) >= 64000,
              "prog runs on it: hakmem served its 1000 blocks (%s)" % r.stdout.replace("\n", ", "),
              "exit %d: %s%s" % (r.returncode, r.stdout, r.stderr))
finally:
    shutil.rmtree(tmp, ignore_errors=True)

print("%d checks, %d failed" % (checks, failures))
sys.exit(1 if failures else 0)
