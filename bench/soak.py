#!/usr/bin/env python3
"""Soak `orch up`: a stack of flapping members plus a chatty one, for minutes.

    cargo build --release                  # orch at target/release/orch (or set ORCH)
    python3 bench/soak.py                  # 10 minutes, a sample every 10 s
    python3 bench/soak.py --minutes 2 --interval 5

Python 3 standard library only; Linux (everything is read from /proc).

The stack (written to a temporary folder, with its own XDG_RUNTIME_DIR):

* flap.quick x4: runs 100 ms and exits 1, restarted at once (backoff 0 s);
* flap.crash x2: killed by SIGKILL after 1 s, restarted at once;
* flap.orphan: leaves a child in its process group and exits 2 after 0.5 s
  (orch kills the group's leftovers before each restart);
* watched.w: runs on; its monitor fails one second in ten, so it is
  restarted every 10 s;
* chatty.talk: up to 10,000 lines a second (about 0.5 MB/s), so its log
  file is rotated (at 64 MiB) every two minutes.

No member is ever disabled (respawn_count 1,000,000). orch's console is read
by a thread of this script, which counts orch's own `started` lines and
throws the rest away.

Every --interval seconds it samples orch (the `orch up` process only, not its
members): VmRSS; CPU time (the sum of its threads' schedstat); CPU use over
the interval in % of one core; open descriptors (/proc/PID/fd); threads;
processes in its tree; zombies in its tree, counting only those that are
still zombies 1 s later (an exit orch has not reaped yet is not a leak); the
time `orch status --json` takes to answer; and the size of the log folder.

The verdict. The first minute (or the first fifth of a shorter run) is
warm-up and is not judged; the samples after it are split into halves:

* RSS is flat when the second half's median is at most 5% (or 1 MiB, the
  larger) above the first's;
* open descriptors: the second half's minimum at most 5% (or 2, the larger)
  above the first's (each live flapping member holds two pipes, so the
  count swings with the moment of the sample; a leak raises the floor too);
* CPU use: the median at most 10% (or 0.5 points of a core) above;
* zombies: none that lasted 1 s, in any sample.

The least-squares slope of RSS and descriptors after warm-up (per minute) is
printed too, as information. At the end orch gets SIGTERM and must exit 0
leaving no process behind (found by a mark in their environment).

Exit status: 0 when every series is flat and the stop is clean, 1 otherwise
(or on a harness error), 130 when interrupted.
"""

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.dont_write_bytecode = True  # importing peers.py leaves no __pycache__ in bench/
sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers import REPO, cpu_used_ns, list_pids, read_stat, thread_cpu_ns, vm_rss_kib  # noqa: E402

MARK_ENV = "ORCH_SOAK_MARK"

STACK = """\
log_dir: logs
services:
  flap:
    commands:
      quick:
        command: sleep 0.1; exit 1
        number_of_processes: 4
        respawn_backoff: 0s
        respawn_count: 1000000
      crash:
        command: sleep 1; kill -KILL $$$$
        number_of_processes: 2
        respawn_backoff: 0s
        respawn_count: 1000000
      orphan:
        command: sleep 1000 & sleep 0.5; exit 2
        respawn_backoff: 0s
        respawn_count: 1000000
  watched:
    commands:
      w:
        command: exec sleep 100000
        respawn_backoff: 0s
        respawn_count: 1000000
        monitor:
          command: test $(( $(date +%s) % 10 )) -ne 0
          interval: 1s
  chatty:
    commands:
      talk:
        command: >-
          while :; do
          seq -f 'line %g: the quick brown fox jumps over the lazy dog' 1 1000;
          sleep 0.1; done
"""


class Console:
    """Reads orch's stdout to its end, counting orch's `started` lines."""

    def __init__(self, stream):
        self.started = 0
        self.behind = 0
        self.thread = threading.Thread(target=self.read, args=(stream,), daemon=True)
        self.thread.start()

    def read(self, stream):
        for line in stream:
            if line.startswith(b"orch "):
                if b": started (pid " in line:
                    self.started += 1
                elif b"console fell behind" in line:
                    self.behind += 1


def tree(root):
    """Pids of root's descendants, from one pass over /proc."""
    parent = {}
    for pid in list_pids():
        st = read_stat(pid)
        if st is not None:
            parent[pid] = st[2]
    kids = {}
    for pid, ppid in parent.items():
        kids.setdefault(ppid, []).append(pid)
    found, todo = [], [root]
    while todo:
        for kid in kids.get(todo.pop(), []):
            found.append(kid)
            todo.append(kid)
    return found


def zombies(pids):
    """(pid, starttime) of those of pids that are zombies."""
    out = set()
    for pid in pids:
        st = read_stat(pid)
        if st is not None and st[1] == b"Z":
            out.add((pid, st[5]))
    return out


def marked(mark):
    """Live processes whose environment holds MARK_ENV=mark."""
    wanted = ("%s=%s" % (MARK_ENV, mark)).encode()
    found = []
    for pid in list_pids():
        try:
            with open("/proc/%d/environ" % pid, "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        st = read_stat(pid)
        if wanted in env and st is not None and st[1] != b"Z":
            found.append(pid)
    return found


def folder_bytes(path):
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


class Soak:
    def __init__(self, orch, folder, env):
        self.orch, self.folder, self.env = orch, folder, env
        self.stack = folder / "stack.yaml"
        self.samples = []
        with open(folder / "orch.stderr", "wb") as stderr:
            self.proc = subprocess.Popen([orch, "up", str(self.stack)], cwd=folder, env=env,
                                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=stderr)
        self.console = Console(self.proc.stdout)
        self.last_cpu = None
        self.cpu_total_ns = 0
        self.t0 = time.monotonic()

    def wait_ready(self):
        """Wait until orch answers `orch status`; the series start then."""
        deadline = time.monotonic() + 60
        while self.status_ms() is None:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("orch did not start answering (see %s)" % (self.folder / "orch.stderr"))
            time.sleep(0.1)
        self.t0 = time.monotonic()

    def status_ms(self):
        """How long `orch status --json` takes to answer, in ms (None: it failed)."""
        start = time.monotonic()
        r = subprocess.run([self.orch, "status", "-f", str(self.stack), "--json"], env=self.env,
                           capture_output=True, timeout=30)
        ms = (time.monotonic() - start) * 1000
        if r.returncode != 0:
            return None
        json.loads(r.stdout)
        return ms

    def sample(self):
        pid = self.proc.pid
        now = time.monotonic()
        cpu = thread_cpu_ns(pid)
        rss = vm_rss_kib(pid)
        if cpu is None or rss is None:
            raise RuntimeError("orch has gone (exit code %s)" % self.proc.poll())
        pct = None
        if self.last_cpu is not None:
            used = cpu_used_ns(self.last_cpu[1], cpu)
            self.cpu_total_ns += used
            pct = 100 * used / 1e9 / (now - self.last_cpu[0])
        self.last_cpu = (now, cpu)
        fds = len(os.listdir("/proc/%d/fd" % pid))
        threads = len(os.listdir("/proc/%d/task" % pid))
        members = tree(pid)
        first = zombies(members)
        ms = self.status_ms()
        if first:
            time.sleep(1)
        lasting = first & zombies(first_pid for first_pid, _ in first)
        self.samples.append({
            "t": now - self.t0, "rss_mib": rss / 1024, "cpu_s": self.cpu_total_ns / 1e9, "cpu_pct": pct, "fds": fds,
            "threads": threads, "tree": len(members), "zombies": len(lasting),
            "status_ms": ms, "started": self.console.started,
            "logs_mb": folder_bytes(self.folder / "logs") / 1e6,
        })

    def stop(self):
        """SIGTERM orch; its exit code and how long it took (None: it did not exit in 60 s)."""
        start = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            code = None
        self.console.thread.join(timeout=10)
        return code, time.monotonic() - start


def halves(series, warmup, summary):
    """`summary` of the first half and of the second half of the samples after warm-up."""
    rest = [s for t, s in series if t >= warmup and s is not None]
    if len(rest) < 4:
        return None
    half = len(rest) // 2
    return summary(rest[:half]), summary(rest[half:])


def slope_per_minute(series, warmup):
    points = [(t, s) for t, s in series if t >= warmup and s is not None]
    if len(points) < 2:
        return None
    ts = [t / 60 for t, _ in points]
    ys = [s for _, s in points]
    mt, my = statistics.fmean(ts), statistics.fmean(ys)
    den = sum((t - mt) ** 2 for t in ts)
    return sum((t - mt) * (y - my) for t, y in zip(ts, ys)) / den if den else None


# (key, name, unit, how a half is summed up, relative tolerance, absolute
# tolerance): see the module's docstring.
JUDGED = [
    ("rss_mib", "RSS", " MiB", ("median", statistics.median), 0.05, 1.0),
    ("fds", "open descriptors", "", ("minimum", min), 0.05, 2),
    ("cpu_pct", "CPU use", "% of a core", ("median", statistics.median), 0.10, 0.5),
]


def verdict(samples, warmup):
    """Lines saying how each series was judged, and whether all are flat."""
    lines, flat = [], True
    for key, name, unit, (how, summary), rel, absolute in JUDGED:
        series = [(s["t"], s[key]) for s in samples]
        both = halves(series, warmup, summary)
        if both is None:
            lines.append("- %s: too few samples after warm-up to judge" % name)
            flat = False
            continue
        first, second = both
        allowed = max(first * rel, absolute)
        ok = second - first <= allowed
        flat &= ok
        slope = slope_per_minute(series, warmup)
        lines.append("- %s: %s %.1f%s, then %.1f%s (allowed: +%.1f); slope %s per minute: %s" % (
            name, how, first, unit, second, unit, allowed,
            "%+.2f%s" % (slope, unit) if slope is not None else "?", "flat" if ok else "NOT FLAT"))
    lasting = sum(s["zombies"] for s in samples)
    flat &= lasting == 0
    lines.append("- zombies lasting 1 s in orch's tree: %d in %d samples: %s" % (
        lasting, len(samples), "none" if lasting == 0 else "LEAK"))
    return lines, flat


def table(samples):
    rows = ["| t | RSS MiB | CPU s | CPU % | fds | threads | tree | zombies | status ms | starts | logs MB |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for s in samples:
        t = int(round(s["t"]))
        rows.append("| %d:%02d | %.1f | %.2f | %s | %d | %d | %d | %d | %s | %d | %.0f |" % (
            t // 60, t % 60, s["rss_mib"], s["cpu_s"],
            "-" if s["cpu_pct"] is None else "%.1f" % s["cpu_pct"], s["fds"], s["threads"],
            s["tree"], s["zombies"], "FAIL" if s["status_ms"] is None else "%.0f" % s["status_ms"],
            s["started"], s["logs_mb"]))
    return "\n".join(rows)


def interrupted(signum, frame):
    raise KeyboardInterrupt


def main():
    ap = argparse.ArgumentParser(description="Soak orch up with flapping members and a chatty one.")
    ap.add_argument("--minutes", type=float, default=10.0, help="how long to run (default 10)")
    ap.add_argument("--interval", type=float, default=10.0, help="seconds between samples (default 10)")
    ap.add_argument("--build", action="store_true", help="cargo build --release first")
    ap.add_argument("--keep-tmp", action="store_true", help="keep the temporary folder (stack, logs)")
    ap.add_argument("--json", help="also write the samples as JSON to this file")
    a = ap.parse_args()
    if a.minutes <= 0 or a.interval <= 0:
        ap.error("--minutes and --interval must be positive")
    if a.build:
        subprocess.run(["cargo", "build", "--release"], cwd=REPO, check=True)
    orch = os.environ.get("ORCH") or str(REPO / "target" / "release" / "orch")
    if not os.access(orch, os.X_OK):
        print("soak: no executable at %s (cargo build --release, or set ORCH)" % orch, file=sys.stderr)
        return 1

    folder = Path(tempfile.mkdtemp(prefix="orch-soak-"))
    (folder / "stack.yaml").write_text(STACK)
    (folder / "run").mkdir()
    mark = "%d-%d" % (os.getpid(), time.time_ns())
    env = dict(os.environ, XDG_RUNTIME_DIR=str(folder / "run"), NO_COLOR="1", **{MARK_ENV: mark})
    env.pop("ORCH_FILE", None)
    signal.signal(signal.SIGTERM, interrupted)

    soak = Soak(orch, folder, env)
    status, stopped, left = 0, None, []
    try:
        soak.wait_ready()
        end = soak.t0 + a.minutes * 60
        next_at = soak.t0
        while True:
            time.sleep(max(0.0, next_at - time.monotonic()))
            soak.sample()
            print("sampled at %4.0f s" % soak.samples[-1]["t"], file=sys.stderr)
            next_at += a.interval
            if next_at > end + 0.5:
                break
    except KeyboardInterrupt:
        print("interrupted; stopping orch", file=sys.stderr)
        status = 130
    except Exception as e:
        print("soak: %s" % e, file=sys.stderr)
        status = 1
    finally:
        if soak.proc.poll() is None:
            stopped = soak.stop()
        left = marked(mark)
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass

    warmup = min(60.0, a.minutes * 60 / 5)
    lines, flat = verdict(soak.samples, warmup)
    print("orch up, %g min, a sample every %g s (`%s`)\n" % (a.minutes, a.interval, " ".join(sys.argv)))
    print(table(soak.samples))
    print("\nWarm-up (not judged): the first %.0f s. Second half against first half of the rest:" % warmup)
    print("\n".join(lines))
    clean = stopped is not None and stopped[0] == 0 and not left
    if stopped is not None:
        print("- stop: SIGTERM, exit code %s after %.2f s; processes left: %d" % (
            stopped[0], stopped[1], len(left)))
    if soak.console.behind:
        print("- the console fell behind %d times (this script reads it as fast as it can)"
              % soak.console.behind)
    print("\nVerdict: %s" % ("flat, and a clean stop" if flat and clean else
                             "flat, but the stop was not clean" if flat else "NOT flat"))
    if a.json:
        Path(a.json).write_text(json.dumps(soak.samples, indent=1))
    if a.keep_tmp:
        print("kept %s" % folder, file=sys.stderr)
    else:
        shutil.rmtree(folder, ignore_errors=True)
    if status == 0 and not (flat and clean):
        status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
