#!/usr/bin/env python3
"""Benchmark `orch up` against peers (supervisord, pm2) and plain baselines.

Runs every workload on every selected tool in ONE run (tools interleaved per
workload, so drift of the machine hits all of them alike) and prints a
Markdown table with each tool's figure and the ratio peer/orch.

    bench/install-peers.sh                       # once: supervisord + pm2
    cargo build --release                        # orch (or set ORCH=path)
    python3 bench/peers.py                       # everything
    python3 bench/peers.py --quick               # 1 repetition, smaller sizes
    python3 bench/peers.py --tools supervisord,pm2 --workloads startup,restart

Python 3 standard library only. Run as a user that may signal the processes
it starts (any user; root is not needed). Linux only: everything is measured
through /proc.

How each figure is measured
---------------------------
Members are `sleep DURATION` processes (absolute path of `sleep`, exec'd
directly, no shell), where DURATION is a random 9-digit number unique to each
launch: it identifies that launch's members beyond doubt.

* start N: the clock starts right before the harness spawns the tool's start
  command (`orch up stack.yaml`, `supervisord -n -c conf`, `pm2 start
  eco.json` with no pm2 daemon running, so the daemon's start is included;
  for the baseline `bash -c 'for ...; do sleep D & done; wait'`). It stops at
  the first /proc poll that finds N members: processes descended from the
  supervisor (for pm2: its God daemon) whose comm is `sleep`, whose argv ends
  with this launch's DURATION, and that are not zombies. That is the moment
  the last member has exec'd `sleep`, which means the same thing for every
  tool, and needs nothing from the tool's own notion of "running". /proc is
  polled every 1 ms; a poll lists /proc and reads /proc/PID/stat only of
  processes it has not classified yet (about 0.2 ms with 600 processes), so
  the poller costs every tool the same small share of one of the two cores.
* DAG (orch only: the peers have no dependency graph): 10 layers of 5
  services with 10 members each; every service depends on all 5 services of
  the layer before it. Same stop condition (500 members).
* idle RSS / CPU: with 500 members running, wait a settling time, then read
  VmRSS of the supervisor process (orch; supervisord's python process; pm2's
  God daemon) and its CPU time (each thread's
  /proc/PID/task/TID/schedstat, ns resolution), sleep the interval (10 s;
  3 s with --quick), read them again (a thread counts from its first
  sample). CPU is in % of one core.
* log throughput: a file of numbered lines (100 bytes each, "%010d " + fixed
  filler + newline; 200 MB = 2,000,000 lines; 50 MB with --quick) is written
  beforehand and read into the page cache again before each tool's turn.
  The member is
  `/bin/sh -c 'read x < FIFO; exec cat FILE'` under every tool, so the
  generator is the same `cat` for all and the start-up of the tool is not
  timed: the clock starts when the harness writes to the FIFO and stops at
  the first 1 ms poll where the member's log file(s) hold at least the file's
  size and the last line is in place. `sync` runs before each tool's turn.
  Then every line of the log dir's files is checked: a line counts when it
  ends with one generated line (so a prefix such as a timestamp is allowed);
  lost = numbers 1..N never seen, dup = seen more than once. If the logs stop
  growing for 5 s before they are complete, the time of the last growth is
  used and the missing lines are reported as lost. MB = 10^6 bytes.
  Baseline: `sh -c 'cat FILE | cat > OUT'`, from spawn to exit.
* crash -> respawn: one member; it is left running for 1.2 s (longer than
  supervisord's 1 s main-loop tick and pm2's min_uptime of 1 s, so each
  tool regards it as running and stable; for supervisord the harness also
  waits for "entered RUNNING state" in its log), then SIGKILLed; the clock runs from
  right before kill(2) to the first 1 ms poll that finds a new member pid.
  Repeated 20 times (5 with --quick); median and max are reported.
* stop 100: with 100 members running, the clock runs from the stop request
  (orch: SIGTERM to `orch up`; supervisord: SIGTERM, its documented way to
  stop everything; pm2: spawning `pm2 kill`, its documented command, which
  stops apps two at a time, or SIGTERM to the God daemon with --pm2-stop
  sigterm, which stops them one at a time) until every member pid is gone
  (exited; a zombie counts as gone).
* SIGKILL of the supervisor: 100 members running, SIGKILL to the supervisor,
  wait 1 s, count members still alive (then the harness kills them).

Repetitions: start 100 / stop 100, start 500 / idle and the throughput run
--repeat times (default 3; 1 with --quick); the table shows the median, and
for lost lines the sum over all runs.

Clean-up: every launch lives in its own temp dir; after each workload the
supervisor is stopped (SIGTERM, SIGKILL after 3 s; pm2 at once by SIGKILL),
then every process is killed whose argv contains that launch's DURATION or
temp dir, or whose environment carries this run's ORCH_BENCH_TAG. The run
ends with a final sweep and fails (exit 1) if anything of it is left.

Exit status: 0 when the harness worked, whatever the tools did (a tool that
fails a workload shows FAIL in its cell and a line under the table); 1 on a
harness error or left-over processes; 130 when interrupted.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import errno
import json
import os
import platform
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

POLL = 0.001  # seconds between /proc polls
REPO = Path(__file__).resolve().parent.parent
PEERS_DIR = Path(os.environ.get("ORCH_BENCH_PEERS") or
                 Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "orch-bench-peers")
CLK_TCK = os.sysconf("SC_CLK_TCK")
RUN_TAG = "%d-%d" % (os.getpid(), random.randrange(10**9))
TAG_ENV = "ORCH_BENCH_TAG"
SLEEP = shutil.which("sleep") or "/bin/sleep"
now = time.perf_counter


class ToolFailure(Exception):
    """A tool did not do what the workload needs (a result, not a harness error)."""


# --------------------------------------------------------------------------
# /proc helpers


def read_stat(pid):
    """(comm, state, ppid, utime, stime, starttime) of pid, or None if gone."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            s = f.read()
    except OSError:
        return None
    lp, rp = s.find(b"("), s.rfind(b")")
    rest = s[rp + 2:].split()
    return (s[lp + 1:rp], rest[0], int(rest[1]), int(rest[11]), int(rest[12]), int(rest[19]))


def read_cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def vm_rss_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def pid_alive(pid, starttime=None):
    """Running (not a zombie) and, if given, still the same process."""
    st = read_stat(pid)
    if st is None or st[1] in (b"Z", b"X", b"x"):
        return False
    return starttime is None or st[5] == starttime


def thread_cpu_ns(pid):
    """CPU time used so far by each live thread of pid, in ns, keyed by tid:
    /proc/PID/task/TID/schedstat (ns resolution), or /proc/PID/stat's
    utime+stime (10 ms ticks) as one entry when schedstat is missing."""
    times = {}
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            try:
                with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                    times[tid] = int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                pass
    except OSError:
        return None
    if times:
        return times
    st = read_stat(pid)
    return None if st is None else {"*": (st[3] + st[4]) * 1_000_000_000 // CLK_TCK}


def cpu_used_ns(before, after):
    """CPU time between two thread_cpu_ns samples. Summing each sample's
    threads and subtracting would go negative when a thread exits in between
    (an idle worker thread retiring takes its whole past with it); instead each
    thread still alive counts from its first sample (or from zero when it
    started in between). A thread that exited in between is not counted: its
    last moments are too small to show at this resolution."""
    return sum(t - before.get(tid, 0) for tid, t in after.items())


def list_pids():
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


class Tracker:
    """Finds one launch's members: descendants of `root` whose comm is `sleep`,
    whose argv ends with the launch's unique duration, and that are not
    zombies. Each poll lists /proc and reads /proc/PID/stat only of processes
    not seen before and of the root's descendants that are not members yet
    (forked but not exec'd)."""

    def __init__(self, token: str, root: int | None = None):
        self.token = token.encode()
        self.root = root
        self.ppid: dict[int, int] = {}
        self.children: dict[int, set] = collections.defaultdict(set)
        self.members: dict[int, int] = {}  # pid -> starttime

    def poll(self):
        pids = set(list_pids())
        known = self.ppid.keys()
        for pid in known - pids:
            pp = self.ppid.pop(pid)
            self.children[pp].discard(pid)
            self.members.pop(pid, None)
        for pid in pids - known:
            st = read_stat(pid)
            if st is None:
                continue
            self.ppid[pid] = st[2]
            self.children[st[2]].add(pid)
        if self.root is None:
            return self.members
        stack = [self.root]
        while stack:
            for c in self.children.get(stack.pop(), ()):
                if c not in self.members:
                    self._classify(c)
                stack.append(c)
        return self.members

    def _classify(self, pid):
        st = read_stat(pid)
        if st is None or st[0] != b"sleep" or st[1] in (b"Z", b"X"):
            return
        argv = [a for a in read_cmdline(pid) if a]
        if argv and argv[-1] == self.token:
            self.members[pid] = st[5]


# --------------------------------------------------------------------------
# Workload specs


class Sleepers:
    """n members `sleep DUR`, restarted on crash; fast=True: respawn at once."""

    def __init__(self, n, fast=False):
        self.n, self.fast = n, fast
        self.token = str(random.randrange(10**8, 10**9))


class Dag(Sleepers):
    """layers x width services of `per` members; each service depends on every
    service of the layer before. orch only."""

    def __init__(self, layers, width, per):
        super().__init__(layers * width * per)
        self.layers, self.width, self.per = layers, width, per


class Generator:
    """One member that runs `shell` once (no restart when it exits 0)."""

    def __init__(self, shell):
        self.shell = shell
        self.token = str(random.randrange(10**8, 10**9))


# --------------------------------------------------------------------------
# orch


def orch_stack_yaml(services, log_dir="logs"):
    """YAML text of an orch stack file.

    services: list of (name, depends_on: list[str], commands) where commands is
    a list of (command_name, fields: dict) and fields holds the stack file's
    command keys (`command`: str -> /bin/sh -c, list -> argv;
    `number_of_processes`, `respawn_backoff`, `when_to_run`, ...).
    Plain words (0s, once, logs) are written bare; anything else as JSON,
    which is valid YAML (a double-quoted string, a flow list)."""
    def scalar(v):
        if isinstance(v, str) and re.fullmatch(r"[A-Za-z0-9_./-]+", v) and not re.fullmatch(
                r"[-+.0-9eE]+|true|false|yes|no|on|off|null|~", v, re.I):
            return v
        return json.dumps(v)
    out = ["log_dir: %s" % scalar(log_dir), "services:"]
    for name, deps, commands in services:
        out.append("  %s:" % name)
        if deps:
            out.append("    depends_on: %s" % json.dumps(deps))
        out.append("    commands:")
        for cname, fields in commands:
            out.append("      %s:" % cname)
            for k, v in fields.items():
                out.append("        %s: %s" % (k, scalar(v)))
    return "\n".join(out) + "\n"


def orch_services(spec):
    # Fairness: members are exec'd as argv (list form: no /bin/sh in between,
    # as supervisord and pm2 exec them directly). Everything else is orch's
    # default (respawn_backoff 100ms, stop_timeout 10s, SIGTERM, default log
    # rotation) except: the crash test sets respawn_backoff 0s (as pm2's
    # restart_delay 0) and a respawn_count that the 20 crashes cannot reach
    # (the default 5 in 60s would disable the member; supervisord has no such
    # limit for a running process, pm2's max_restarts is raised likewise);
    # the throughput member is `when_to_run: once` (as autorestart=false).
    if isinstance(spec, Generator):
        return [("t", [], [("gen", {"command": spec.shell, "when_to_run": "once"})])]
    member = {"command": [SLEEP, spec.token]}
    if isinstance(spec, Dag):
        services = []
        for layer in range(spec.layers):
            prev = ["l%ds%d" % (layer - 1, w) for w in range(spec.width)] if layer else []
            for w in range(spec.width):
                services.append(("l%ds%d" % (layer, w), prev,
                                 [("c", dict(member, number_of_processes=spec.per))]))
        return services
    fields = dict(member, number_of_processes=spec.n)
    if spec.fast:
        fields.update(respawn_backoff="0s", respawn_count=1000000, respawn_window="60s")
    return [("s", [], [("c", fields)])]


class Tool:
    name = "?"
    supports = ()  # workload names

    def available(self):
        return True, ""

    def version(self):
        return ""

    def env(self, d):
        e = dict(os.environ)
        e[TAG_ENV] = RUN_TAG
        e["NO_COLOR"] = "1"
        return e

    def find_root(self, launch):
        return launch.proc.pid

    def stop(self, launch):
        """The measured stop request."""
        os.kill(launch.root, signal.SIGTERM)

    def teardown_signal_first(self):
        return True

    def settled(self, launch, spawns):
        """Whether the tool regards its single member (spawned `spawns` times
        so far) as running, where that differs from "exec'd"."""
        return True


class Launch:
    def __init__(self, tool, d, spec, proc, console):
        self.tool, self.d, self.spec, self.proc = tool, d, spec, proc
        self.console = console
        self.root = None
        self.others = []  # more Popen objects to reap (pm2 kill)
        self.tracker = Tracker(getattr(spec, "token", "-"))


def spawn(argv, d, env, console_mode):
    """Popen of argv; its t0 attribute is the clock right before the spawn
    (after the tool's config was written)."""
    out = open(os.devnull, "wb") if console_mode == "null" else open(d / "console.out", "wb")
    try:
        t0 = now()
        p = subprocess.Popen(argv, cwd=d, env=env, stdin=subprocess.DEVNULL, stdout=out,
                             stderr=subprocess.STDOUT, start_new_session=True)
        p.t0 = t0
        return p
    finally:
        out.close()


class Orch(Tool):
    name = "orch"
    supports = ("start100", "start500", "dag500", "idle", "throughput", "restart", "stop100", "sigkill")

    def __init__(self):
        self.bin = os.environ.get("ORCH") or str(REPO / "target" / "release" / "orch")

    def available(self):
        if os.access(self.bin, os.X_OK):
            return True, ""
        return False, "orch: no executable at %s (cargo build --release, or set ORCH)" % self.bin

    def version(self):
        try:
            r = subprocess.run([self.bin, "--version"], capture_output=True, text=True, timeout=10)
            return (r.stdout.strip() or r.stderr.strip()).splitlines()[0]
        except Exception:
            return "?"

    def start(self, d, spec, console):
        (d / "stack.yaml").write_text(orch_stack_yaml(orch_services(spec)))
        return Launch(self, d, spec, spawn([self.bin, "up", str(d / "stack.yaml")], d, self.env(d), console), console)

    def status(self, launch):
        r = subprocess.run([self.bin, "status", "-f", str(launch.d / "stack.yaml"), "--json"],
                           capture_output=True, text=True, timeout=20, env=self.env(launch.d))
        if r.returncode != 0:
            raise ToolFailure("orch status exited %d: %s" % (r.returncode, r.stderr.strip()[-300:]))
        return json.loads(r.stdout)


class Supervisord(Tool):
    name = "supervisord"
    supports = ("start100", "start500", "idle", "throughput", "restart", "stop100", "sigkill")

    def __init__(self):
        cands = [os.environ.get("SUPERVISORD"), str(PEERS_DIR / "venv" / "bin" / "supervisord"),
                 shutil.which("supervisord")]
        self.bin = next((c for c in cands if c and os.access(c, os.X_OK)), None)

    def available(self):
        if self.bin:
            return True, ""
        return False, "supervisord: not installed (bench/install-peers.sh)"

    def version(self):
        r = subprocess.run([self.bin, "--version"], capture_output=True, text=True, timeout=30)
        return r.stdout.strip()

    @staticmethod
    def config(d, spec):
        # Fairness choices for supervisord:
        # - startsecs=0: a member counts as started at once (its default 1 s
        #   would only delay its RUNNING state, not the exec we measure, but
        #   it would turn an early crash into BACKOFF with growing delays).
        # - autorestart=true for the sleepers (its default "unexpected" would
        #   also restart them after SIGKILL); autorestart=false for the
        #   throughput member (like orch's when_to_run: once).
        # - startretries raised for the crash test only for symmetry with
        #   orch's respawn_count; it applies to failed starts, not crashes.
        # - one stdout log file per member, stderr merged into it
        #   (redirect_stderr), as orch keeps one file per member;
        #   stdout_logfile_maxbytes=1GB so the 200 MB test never rotates; no
        #   other logging options (loglevel stays info, the default).
        # - numprocs for N members (the supervisord way, like pm2's instances
        #   and orch's number_of_processes); stopsignal/stopwaitsecs default
        #   (TERM, 10 s: the same as orch's defaults).
        # - no RPC server (unix_http_server) since nothing talks to it.
        # - supervisord's own log goes to a file in the temp dir.
        logs = d / "logs"
        lines = ["[supervisord]", "nodaemon=true", "logfile=%s" % (d / "supervisord.log"),
                 "pidfile=%s" % (d / "supervisord.pid"), "childlogdir=%s" % logs, ""]
        if isinstance(spec, Generator):
            lines += ["[program:gen]", "command=/bin/sh -c \"%s\"" % spec.shell, "startsecs=0",
                      "autorestart=false", "redirect_stderr=true",
                      "stdout_logfile=%s" % (logs / "t.gen.log"), "stdout_logfile_maxbytes=1GB"]
        else:
            lines += ["[program:s]", "command=%s %s" % (SLEEP, spec.token), "numprocs=%d" % spec.n,
                      "process_name=%(program_name)s_%(process_num)d", "startsecs=0",
                      "autorestart=true", "redirect_stderr=true",
                      "stdout_logfile=%s" % (logs / "s.c.%(process_num)d.log"),
                      "stdout_logfile_maxbytes=1GB"]
            if spec.fast:
                lines.append("startretries=1000000")
        return "\n".join(lines) + "\n"

    def settled(self, launch, spawns):
        # STARTING -> RUNNING happens on supervisord's next main-loop pass (up
        # to 1 s after the spawn, more under load); a crash before that would
        # be a failed start (BACKOFF, delayed retry), not the crash we time.
        try:
            return (launch.d / "supervisord.log").read_bytes().count(b"entered RUNNING state") >= spawns
        except OSError:
            return False

    def start(self, d, spec, console):
        (d / "logs").mkdir(exist_ok=True)
        (d / "supervisord.conf").write_text(self.config(d, spec))
        return Launch(self, d, spec, spawn([self.bin, "-n", "-c", str(d / "supervisord.conf")], d,
                                           self.env(d), console), console)


class Pm2(Tool):
    name = "pm2"
    supports = ("start100", "start500", "idle", "throughput", "restart", "stop100", "sigkill")
    stop_mode = "kill"

    def __init__(self):
        cands = [os.environ.get("PM2"), str(PEERS_DIR / "npm" / "node_modules" / ".bin" / "pm2"),
                 shutil.which("pm2")]
        self.bin = next((c for c in cands if c and os.access(c, os.X_OK)), None)

    def available(self):
        if self.bin:
            return True, ""
        return False, "pm2: not installed (bench/install-peers.sh)"

    def version(self):
        # `pm2 --version` would start a daemon in ~/.pm2: read package.json.
        pkg = Path(os.path.realpath(self.bin)).parent.parent / "package.json"
        try:
            return "pm2 " + json.loads(pkg.read_text())["version"]
        except Exception:
            return "pm2 ?"

    def env(self, d):
        e = super().env(d)
        e["PM2_HOME"] = str(d / "pm2home")
        return e

    @staticmethod
    def config(d, spec):
        # Fairness choices for pm2:
        # - fork mode, interpreter "none": the binary is spawned directly
        #   (no node wrapper), as orch and supervisord exec it.
        # - `instances: N` for N members (pm2's replicas), each with its own
        #   out/err log files (merge_logs false), as orch keeps one file per
        #   replica; the single throughput member has exactly one out file.
        # - autorestart true for the sleepers; false for the throughput member
        #   (like orch's when_to_run: once); the crash test sets
        #   restart_delay 0 (its default is 0 too) and a max_restarts the 20
        #   crashes cannot reach (as orch's respawn_count).
        # - vizion false: pm2 would otherwise probe the cwd for git metadata,
        #   a feature orch and supervisord do not have (this helps pm2).
        # - no log_date_format, no pm2-logrotate: logs are written raw.
        # - the daemon is started cold by `pm2 start` (no daemon running), so
        #   its start-up is part of "start N", as orch's and supervisord's are.
        # - PM2_HOME is a fresh folder per launch.
        logs = d / "logs"
        base = {"interpreter": "none", "exec_mode": "fork", "vizion": False, "cwd": str(d)}
        if isinstance(spec, Generator):
            app = dict(base, name="gen", script="/bin/sh", args=["-c", spec.shell], autorestart=False,
                       merge_logs=True, out_file=str(logs / "t.gen.log"),
                       error_file=str(d / "t.gen.err.log"))
        else:
            app = dict(base, name="s", script=SLEEP, args=[spec.token], instances=spec.n,
                       autorestart=True, merge_logs=False, out_file=str(logs / "s.c.log"),
                       error_file=str(logs / "s.c.err.log"))
            if spec.fast:
                app.update(restart_delay=0, max_restarts=1000000)
        return json.dumps({"apps": [app]}, indent=1)

    def start(self, d, spec, console):
        (d / "logs").mkdir(exist_ok=True)
        (d / "eco.json").write_text(self.config(d, spec))
        return Launch(self, d, spec, spawn([self.bin, "start", str(d / "eco.json")], d, self.env(d), console),
                      console)

    def find_root(self, launch):
        try:
            pid = int((launch.d / "pm2home" / "pm2.pid").read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if pid_alive(pid) else None

    def stop(self, launch):
        if self.stop_mode == "sigterm":
            os.kill(launch.root, signal.SIGTERM)
        else:
            out = open(launch.d / "pm2kill.out", "wb")
            launch.others.append(subprocess.Popen([self.bin, "kill"], cwd=launch.d, env=self.env(launch.d),
                                                  stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                                  start_new_session=True))
            out.close()

    def teardown_signal_first(self):
        return False  # its SIGTERM path stops members one at a time: SIGKILL + sweep


#: Tools that set a floor rather than compete: no ratio column.
BASELINES = ("orch", "baseline", "command-loop")


class Bash(Tool):
    """Baseline: a bash loop forking the members."""
    name = "baseline"
    supports = ("start100", "start500", "throughput")

    def start(self, d, spec, console):
        script = "for ((i=0;i<%d;i++)); do %s %s & done; wait" % (spec.n, SLEEP, spec.token)
        return Launch(self, d, spec, spawn(["bash", "-c", script], d, self.env(d), console), console)

    def teardown_signal_first(self):
        return False


class CommandLoop(Tool):
    """Baseline: a bare std::process::Command loop (bench/command_loop.rs)
    starting the members as orch does, without supervising them."""
    name = "command-loop"
    supports = ("start100", "start500")

    def __init__(self):
        self.bin = str(REPO / "target" / "release" / "examples" / "command-loop")

    def available(self):
        if os.access(self.bin, os.X_OK):
            return True, ""
        return False, "command-loop: no executable at %s (cargo build --release --examples)" % self.bin

    def start(self, d, spec, console):
        argv = [self.bin, str(spec.n), SLEEP, spec.token]
        return Launch(self, d, spec, spawn(argv, d, self.env(d), console), console)

    def teardown_signal_first(self):
        return False


# --------------------------------------------------------------------------
# Clean-up


class Cleaner:
    def __init__(self):
        self.tokens: set[bytes] = set()
        self.launches: list[Launch] = []
        self.protect = {os.getpid(), os.getppid()}

    def sweep(self, tokens=None, timeout=10.0):
        """SIGKILL every process whose argv contains one of tokens (default: all
        of this run's), or whose environment has this run's tag. Returns how
        many it killed."""
        tokens = self.tokens if tokens is None else tokens
        tag = ("%s=%s" % (TAG_ENV, RUN_TAG)).encode()
        killed = set()
        deadline = now() + timeout
        while True:
            found = []
            for pid in list_pids():
                if pid in self.protect:
                    continue
                st = read_stat(pid)
                if st is None or st[1] in (b"Z", b"X"):
                    continue
                argv = b"\0".join(read_cmdline(pid))
                hit = any(t in argv for t in tokens)
                if not hit:
                    try:
                        with open("/proc/%d/environ" % pid, "rb") as f:
                            hit = tag in f.read().split(b"\0")
                    except OSError:
                        pass
                if hit:
                    found.append(pid)
            if not found:
                return len(killed)
            for pid in found:
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed.add(pid)
                except ProcessLookupError:
                    pass
            if now() > deadline:
                raise RuntimeError("processes survive SIGKILL: %s" % found)
            time.sleep(0.05)

    def teardown(self, launch, keep=False):
        """Stop a launch without measuring: the tool's stop (SIGTERM), SIGKILL
        after 3 s, then kill whatever of it is left and remove its temp dir."""
        tool = launch.tool
        root = launch.root or tool.find_root(launch)
        if root and pid_alive(root):
            if tool.teardown_signal_first():
                try:
                    os.kill(root, signal.SIGTERM)
                except ProcessLookupError:
                    pass
                deadline = now() + 3.0
                while pid_alive(root) and now() < deadline:
                    if launch.proc.pid == root:
                        launch.proc.poll()
                    time.sleep(0.01)
            if pid_alive(root):
                try:
                    os.kill(root, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for p in [launch.proc] + launch.others:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        toks = {str(launch.d).encode()}
        if getattr(launch.spec, "token", None):
            toks.add(launch.spec.token.encode())
        self.sweep(toks)
        for p in [launch.proc] + launch.others:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if launch in self.launches:
            self.launches.remove(launch)
        if not keep:
            shutil.rmtree(launch.d, ignore_errors=True)


# --------------------------------------------------------------------------
# The bench


def median(xs):
    return statistics.median(xs) if xs else None


class Bench:
    def __init__(self, args, tools):
        self.args, self.tools = args, tools
        self.root = Path(tempfile.mkdtemp(prefix="orch-bench-"))
        self.cleaner = Cleaner()
        self.cleaner.tokens.add(str(self.root).encode())
        self.results = collections.defaultdict(lambda: collections.defaultdict(list))
        self.failures = []  # (workload, tool, message)
        self.notes = []
        self.samples = {}
        self.counter = 0

    # -- launching

    def new_dir(self, tool, what):
        self.counter += 1
        d = self.root / ("%02d-%s-%s" % (self.counter, tool.name, what))
        d.mkdir()
        return d

    def launch(self, tool, spec, what):
        d = self.new_dir(tool, what)
        if getattr(spec, "token", None):
            self.cleaner.tokens.add(spec.token.encode())
        launch = tool.start(d, spec, self.args.console)
        self.cleaner.launches.append(launch)
        return launch, launch.proc.t0

    def check_alive(self, launch, what):
        """Raise ToolFailure if the supervisor is gone."""
        p = launch.proc
        if launch.root is not None:
            if not pid_alive(launch.root):
                raise ToolFailure("%s: the supervisor exited during %s%s" % (launch.tool.name, what, self.tail(launch)))
        elif p.poll() is not None and p.returncode != 0:
            raise ToolFailure("%s: start command exited %s%s" % (launch.tool.name, p.returncode, self.tail(launch)))

    def tail(self, launch):
        try:
            t = (launch.d / "console.out").read_bytes()[-400:].decode(errors="replace").strip()
            return (": " + " / ".join(t.splitlines()[-4:])) if t else ""
        except OSError:
            return ""

    def wait_members(self, launch, t0, n, timeout=120.0, what="start-up"):
        """Poll /proc every POLL until n members run; return elapsed seconds."""
        tr = launch.tracker
        while True:
            if launch.root is None:
                launch.root = launch.tool.find_root(launch)
                tr.root = launch.root
            if len(tr.poll()) >= n:
                return now() - t0
            if now() - t0 > timeout:
                raise ToolFailure("%s: %d of %d members running after %.0f s%s" %
                                  (launch.tool.name, len(tr.members), n, timeout, self.tail(launch)))
            self.check_alive(launch, what)
            time.sleep(POLL)

    def run_cell(self, workload, tool, fn):
        try:
            fn()
        except ToolFailure as e:
            self.failures.append((workload, tool.name, str(e)))
            print("  %s %s: FAIL %s" % (workload, tool.name, e), file=sys.stderr)
        finally:
            for launch in list(self.cleaner.launches):
                self.cleaner.teardown(launch, keep=self.args.keep_tmp)

    def record(self, key, tool, value):
        self.results[key][tool.name].append(value)
        print("  %-14s %-12s %s" % (key, tool.name, value), file=sys.stderr)

    # -- workloads

    def w_start_stop(self, tool, rep):
        """start 100, then the measured stop of those 100."""
        spec = Sleepers(100)
        launch, t0 = self.launch(tool, spec, "start100")
        self.record("start100", tool, self.wait_members(launch, t0, spec.n))
        if isinstance(tool, Orch) and rep == 0:
            self.verify_orch_status(tool, launch, spec.n)
        if "stop100" not in tool.supports or "stop" not in self.args.workloads:
            return
        members = dict(launch.tracker.members)
        t0 = now()
        tool.stop(launch)
        left = dict(members)
        while left:
            for pid, st in list(left.items()):
                if not pid_alive(pid, st):
                    del left[pid]
            if not left:
                break
            if now() - t0 > 120:
                raise ToolFailure("%s: %d of 100 members still running 120 s after the stop request"
                                  % (tool.name, len(left)))
            time.sleep(POLL)
        self.record("stop100", tool, now() - t0)
        # The supervisor itself should exit too; orch promises exit code 0.
        deadline = now() + 30
        while launch.root and pid_alive(launch.root) and now() < deadline:
            launch.proc.poll()
            time.sleep(0.005)
        if launch.root and pid_alive(launch.root):
            self.notes.append("%s: the supervisor was still running 30 s after its members stopped" % tool.name)
        elif isinstance(tool, (Orch, Supervisord)):
            rc = launch.proc.wait(timeout=10)
            if rc != 0:
                self.notes.append("%s exited %d after SIGTERM (expected 0)" % (tool.name, rc))

    def verify_orch_status(self, tool, launch, n):
        """Cross-check the /proc count with `orch status --json` (a note only)."""
        try:
            st = tool.status(launch)
            members = [m for s in st["services"] for m in s["members"]]
            running = [m for m in members if m.get("state") == "running"]
            pids = {m.get("pid") for m in running}
            agree = pids == set(launch.tracker.members)
            self.notes.append("orch status --json after start 100: %d of %d members running, %d services up; "
                              "its pids %s the /proc count" %
                              (len(running), n, sum(1 for s in st["services"] if s.get("state") == "up"),
                               "match" if agree else "do NOT match"))
        except Exception as e:  # the interface may not be there yet: a note, not a failure
            self.notes.append("orch status --json could not be checked: %s" % str(e)[:300])

    def w_start500(self, tool, rep):
        spec = Sleepers(500)
        launch, t0 = self.launch(tool, spec, "start500")
        self.record("start500", tool, self.wait_members(launch, t0, spec.n))
        if "idle" not in tool.supports or "idle" not in self.args.workloads:
            return
        time.sleep(self.args.settle)
        root = launch.root
        a = thread_cpu_ns(root)
        t_a = now()
        time.sleep(self.args.idle)
        b, rss1 = thread_cpu_ns(root), vm_rss_kib(root)
        t_b = now()
        if a is None or b is None or rss1 is None:
            raise ToolFailure("%s: the supervisor exited while idle" % tool.name)
        alive = sum(1 for p, s in launch.tracker.members.items() if pid_alive(p, s))
        if alive != spec.n:
            raise ToolFailure("%s: only %d of %d members alive after the idle period" % (tool.name, alive, spec.n))
        self.record("idle_rss", tool, rss1 / 1024.0)
        self.record("idle_cpu", tool, 100.0 * cpu_used_ns(a, b) / 1e9 / (t_b - t_a))

    def w_dag(self, tool, rep):
        spec = Dag(10, 5, 10)
        launch, t0 = self.launch(tool, spec, "dag500")
        self.record("dag500", tool, self.wait_members(launch, t0, spec.n))

    def w_restart(self, tool):
        spec = Sleepers(1, fast=True)
        launch, t0 = self.launch(tool, spec, "restart")
        self.wait_members(launch, t0, 1)
        tr = launch.tracker
        lat = []
        for i in range(self.args.restarts):
            time.sleep(1.2)
            deadline = now() + 10
            while not tool.settled(launch, i + 1) and now() < deadline:
                time.sleep(0.01)
            tr.poll()
            live = [p for p, s in tr.members.items() if pid_alive(p, s)]
            if len(live) != 1:
                raise ToolFailure("%s: %d live members before crash %d" % (tool.name, len(live), i + 1))
            old = set(tr.members)
            t0 = now()
            os.kill(live[0], signal.SIGKILL)
            while True:
                new = [p for p in tr.poll() if p not in old]
                if new:
                    lat.append(now() - t0)
                    break
                if now() - t0 > 30:
                    raise ToolFailure("%s: no respawn within 30 s after crash %d" % (tool.name, i + 1))
                self.check_alive(launch, "the crash test")
                time.sleep(POLL)
        self.record("restart", tool, median(lat))
        self.record("restart_max", tool, max(lat))
        self.samples.setdefault("restart", {})[tool.name] = lat

    def w_sigkill(self, tool):
        spec = Sleepers(100)
        launch, t0 = self.launch(tool, spec, "sigkill")
        self.wait_members(launch, t0, spec.n)
        members = dict(launch.tracker.members)
        os.kill(launch.root, signal.SIGKILL)
        time.sleep(1.0)
        self.record("sigkill", tool, sum(1 for p, s in members.items() if pid_alive(p, s)))

    # -- throughput

    def make_lines(self):
        """The generator's input: N numbered lines of LINE bytes."""
        L, n = self.args.line_bytes, int(self.args.mb * 1e6) // self.args.line_bytes
        filler = (b"abcdefghijklmnopqrstuvwxyz" * 8)[:L - 12]
        path = self.root / "lines.txt"
        with open(path, "wb", buffering=1 << 20) as f:
            step = 100000
            for a in range(1, n + 1, step):
                f.write(b"".join(b"%010d %s\n" % (i, filler) for i in range(a, min(a + step, n + 1))))
        self.lines = (path, n, L, b" " + filler + b"\n", n * L)

    def warm_lines(self):
        """Read the generator's input (again) into the page cache, just before
        a turn: a kernel that reclaims cold pages on its own (DAMON's
        `pageout`, kswapd) may have dropped it since the last one, and the
        tool whose turn it is would then be timed reading the disk."""
        with open(self.lines[0], "rb") as f:
            while f.read(1 << 22):
                pass

    def check_lines(self, files):
        """(lines matched, lost, duplicated, other lines) over files."""
        _, n, L, suffix, _ = self.lines
        seen = bytearray(n + 1)
        other = 0
        for fp in files:
            with open(fp, "rb") as f:
                for line in f:
                    if len(line) >= L and line.endswith(suffix):
                        digits = line[-L:-L + 10]
                        if digits.isdigit():
                            k = int(digits)
                            if 1 <= k <= n:
                                if seen[k] < 255:
                                    seen[k] += 1
                                continue
                    other += 1
        body = seen[1:]
        lost = body.count(0)
        dup = n - lost - body.count(1)
        return n - lost, lost, dup, other

    def w_throughput(self, tool):
        path, n, L, suffix, total = self.lines
        last = b"%010d" % n + suffix
        if isinstance(tool, Bash):
            out = self.new_dir(tool, "throughput") / "out.log"
            os.sync()
            self.warm_lines()
            t0 = now()
            p = subprocess.Popen(["sh", "-c", 'cat "$1" | cat > "$2"', "sh", str(path), str(out)],
                                 env=dict(os.environ, **{TAG_ENV: RUN_TAG}), start_new_session=True)
            p.wait()
            el = now() - t0
            self.throughput_result(tool, el, [out])
            shutil.rmtree(out.parent, ignore_errors=True)
            return
        d = None
        fifo_holder = self.new_dir(tool, "fifo")
        fifo = fifo_holder / "go"
        os.mkfifo(fifo)
        spec = Generator("read x < %s; exec cat %s" % (fifo, path))
        os.sync()
        self.warm_lines()
        launch, t0 = self.launch(tool, spec, "throughput")
        d = launch.d
        logs = d / "logs"
        deadline = now() + 60
        while True:  # wait until the member's shell waits on the FIFO
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError as e:
                if e.errno != errno.ENXIO:
                    raise
            if launch.root is None:
                launch.root = tool.find_root(launch)
            self.check_alive(launch, "the throughput test")
            if now() > deadline:
                raise ToolFailure("%s: the generator did not start within 60 s%s" % (tool.name, self.tail(launch)))
            time.sleep(POLL)
        t0 = now()
        os.write(fd, b"go\n")
        os.close(fd)
        size_seen, t_grow = -1, t0
        while True:
            files = [logs / f for f in os.listdir(logs)] if logs.is_dir() else []
            size = 0
            for f in files:
                try:
                    size += f.stat().st_size
                except OSError:
                    pass
            t = now()
            if size != size_seen:
                size_seen, t_grow = size, t
            if size >= total and any(self.tail_has(f, last) for f in files):
                el = t - t0
                break
            if t - t_grow > 5.0:
                el = t_grow - t0
                self.notes.append("%s: its log stopped growing %.1f s after the start, incomplete" % (tool.name, el))
                break
            if t - t0 > 600:
                raise ToolFailure("%s: log not complete after 600 s" % tool.name)
            time.sleep(POLL)
        self.throughput_result(tool, el, sorted(files))
        try:
            csize = (d / "console.out").stat().st_size
            if csize > 1e6:
                self.notes.append("%s: its console (stdout, to a file) got %.0f MB during the throughput test"
                                  % (tool.name, csize / 1e6))
        except OSError:
            pass
        shutil.rmtree(fifo_holder, ignore_errors=True)

    @staticmethod
    def tail_has(f, last):
        try:
            with open(f, "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                fh.seek(max(0, size - 65536))
                return last in fh.read()
        except OSError:
            return False

    def throughput_result(self, tool, el, files):
        _, n, _, _, total = self.lines
        got, lost, dup, other = self.check_lines(files)
        self.record("throughput", tool, total / 1e6 / el)
        self.record("lost", tool, lost)
        if dup or other:
            self.notes.append("%s: throughput log has %d duplicated numbers and %d other lines"
                              % (tool.name, dup, other))

    # -- driver

    def run(self):
        a = self.args
        wl = a.workloads
        if "throughput" in wl:
            print("generating %.0f MB of numbered lines ..." % a.mb, file=sys.stderr)
            self.make_lines()
        order = [
            ("start", a.repeat, lambda t, r: self.w_start_stop(t, r), "start100"),
            ("start", a.repeat, lambda t, r: self.w_start500(t, r), "start500"),
            ("dag", a.repeat, lambda t, r: self.w_dag(t, r), "dag500"),
            ("restart", 1, lambda t, r: self.w_restart(t), "restart"),
            ("throughput", a.repeat, lambda t, r: self.w_throughput(t), "throughput"),
            ("sigkill", 1, lambda t, r: self.w_sigkill(t), "sigkill"),
        ]
        # "stop" and "idle" ride on start100 / start500.
        if ("stop" in wl or "idle" in wl) and "start" not in wl:
            wl = wl + ["start"]
        for name, reps, fn, key in order:
            if name not in wl:
                continue
            for r in range(reps):
                print("[%s] round %d/%d" % (key, r + 1, reps), file=sys.stderr)
                for tool in self.tools:
                    if key not in tool.supports:
                        continue
                    if any(w == key and t == tool.name for w, t, _ in self.failures):
                        continue  # failed in an earlier round: not again
                    self.run_cell(key, tool, lambda: fn(tool, r))

    def finish(self):
        for launch in list(self.cleaner.launches):
            try:
                self.cleaner.teardown(launch, keep=self.args.keep_tmp)
            except Exception as e:
                print("teardown: %s" % e, file=sys.stderr)
        n = self.cleaner.sweep()
        if not self.args.keep_tmp:
            shutil.rmtree(self.root, ignore_errors=True)
        return n


# --------------------------------------------------------------------------
# Report

ROWS = [
    # key, label, unit, scale, digits, higher is better (rows show the median
    # over the repetitions, except "lost": the sum over all throughput runs)
    ("start100", "start 100 members, until all exec'd", "s", 1, 3, False),
    ("start500", "start 500 members, until all exec'd", "s", 1, 3, False),
    ("dag500", "start 500 members in a DAG (10 layers x 5 services x 10)", "s", 1, 3, False),
    ("idle_rss", "supervisor RSS, 500 idle members", "MiB", 1, 1, False),
    ("idle_cpu", "supervisor CPU, 500 idle members", "% of a core", 1, 3, False),
    ("throughput", "log throughput, one member's stdout to its log file", "MB/s", 1, 0, True),
    ("lost", "lines lost in that log (sum over all runs)", "lines", 1, 0, False),
    ("restart", "crash (SIGKILL) to respawn, median", "ms", 1000, 2, False),
    ("restart_max", "crash (SIGKILL) to respawn, max", "ms", 1000, 2, False),
    ("stop100", "stop 100 members, until all gone", "s", 1, 3, False),
    ("sigkill", "members alive 1 s after SIGKILL of the supervisor (of 100)", "", 1, 0, False),
]


def fmt(v, digits):
    if v is None:
        return "n/a"
    if digits == 0:
        return "{:,.0f}".format(v)
    return "{:,.{d}f}".format(v, d=digits)


def report(bench, tools, versions):
    res = bench.results
    names = [t.name for t in tools]
    peers = [n for n in names if n not in BASELINES]
    if not any(res[k].get("orch") for k in res):
        peers = []  # nothing to divide by: no ratio columns
    head = ["workload", "unit"] + names + ["%s/orch" % p for p in peers]
    out = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * (len(head) - 2)) + "|"]
    failed = {(w, t) for w, t, _ in bench.failures}
    for key, label, unit, scale, digits, _higher in ROWS:
        if not any(res[key].get(n) for n in names) and not any(w == key for w, _, _ in bench.failures):
            continue
        vals = {}
        cells = []
        for n in names:
            xs = res[key].get(n)
            if xs:
                vals[n] = (sum(xs) if key == "lost" else median(xs)) * scale
                cells.append(fmt(vals[n], digits))
            elif (key, n) in failed:
                cells.append("FAIL")
            else:
                cells.append("—")
        ratios = []
        for p in peers:
            o, v = vals.get("orch"), vals.get(p)
            if o is None or v is None:
                ratios.append("n/a")
            elif o == 0:
                ratios.append("n/a" if v == 0 else "∞")
            else:
                ratios.append("%.2f×" % (v / o))
        out.append("| " + " | ".join([label, unit] + cells + ratios) + " |")
    lines = ["", "## orch vs peers (%s)" % datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), ""]
    lines.append("Machine: %d cores, %s, Linux %s, Python %s. Tools: %s." % (
        os.cpu_count() or 0, cpu_model(), platform.release(), platform.python_version(),
        "; ".join("%s (%s)" % (k, v) for k, v in versions.items())))
    lines.append("Repetitions: start/stop/idle/throughput x%d (median shown), %d crashes; throughput: "
                 "%.0f MB of %d-byte lines; idle CPU over %.0f s." % (
                     bench.args.repeat, bench.args.restarts, bench.args.mb, bench.args.line_bytes, bench.args.idle))
    lines.append("Ratio = peer / orch: above 1 means orch is ahead, except for throughput, where above 1 "
                 "means the peer is ahead. '—' = not applicable; n/a = no figure to divide.")
    lines.append("")
    lines += out
    if bench.failures or bench.notes:
        lines.append("")
    for w, t, msg in bench.failures:
        lines.append("- FAIL %s on %s: %s" % (w, t, msg))
    for n, k in collections.Counter(bench.notes).items():  # insertion order, repeats counted
        lines.append("- %s%s" % (n, " (%d runs)" % k if k > 1 else ""))
    return "\n".join(lines) + "\n"


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


# --------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description="Benchmark orch against supervisord and pm2 in one run.",
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tools", default="orch,supervisord,pm2,baseline,command-loop",
                    help="comma list of orch,supervisord,pm2,baseline,command-loop "
                         "(default: all; missing ones are skipped)")
    ap.add_argument("--workloads", default="start,stop,idle,dag,restart,throughput,sigkill",
                    help="comma list of start,stop,idle,dag,restart,throughput,sigkill (default: all)")
    ap.add_argument("--quick", action="store_true",
                    help="1 repetition, 5 crashes, 50 MB, 3 s idle window")
    ap.add_argument("--repeat", type=int, help="repetitions of start/stop/idle (default 3)")
    ap.add_argument("--restarts", type=int, help="crashes in the respawn test (default 20)")
    ap.add_argument("--mb", type=float, help="MB the throughput member writes (default 200)")
    ap.add_argument("--line-bytes", type=int, default=100, help="bytes per generated line (default 100)")
    ap.add_argument("--idle", type=float, help="idle CPU window in seconds (default 10)")
    ap.add_argument("--settle", type=float, default=2.0, help="wait before the idle window (default 2 s)")
    ap.add_argument("--console", choices=("file", "null"), default="file",
                    help="where each supervisor's own stdout/stderr goes (default: a file in its temp dir)")
    ap.add_argument("--pm2-stop", choices=("kill", "sigterm"), default="kill",
                    help="pm2's stop request: `pm2 kill` (default) or SIGTERM to its daemon")
    ap.add_argument("--build", action="store_true", help="cargo build --release first")
    ap.add_argument("--out", help="also write the Markdown report to this file")
    ap.add_argument("--json", help="write all raw samples as JSON to this file")
    ap.add_argument("--keep-tmp", action="store_true", help="keep the temp dirs (configs, logs)")
    a = ap.parse_args()
    q = a.quick
    a.repeat = a.repeat or (1 if q else 3)
    a.restarts = a.restarts or (5 if q else 20)
    a.mb = a.mb or (50.0 if q else 200.0)
    a.idle = a.idle or (3.0 if q else 10.0)
    a.workloads = [w.strip() for w in a.workloads.split(",") if w.strip()]
    if a.line_bytes < 20:
        ap.error("--line-bytes must be at least 20")
    Pm2.stop_mode = a.pm2_stop

    if a.build:
        subprocess.run(["cargo", "build", "--release", "--bins", "--examples"], cwd=REPO, check=True)

    known = {"orch": Orch, "supervisord": Supervisord, "pm2": Pm2, "baseline": Bash,
             "command-loop": CommandLoop}
    tools, versions, skipped = [], {}, []
    for name in [t.strip() for t in a.tools.split(",") if t.strip()]:
        if name not in known:
            ap.error("unknown tool %r" % name)
        t = known[name]()
        ok, why = t.available()
        if not ok:
            skipped.append(why)
            continue
        tools.append(t)
        if name not in BASELINES[1:]:
            versions[name] = t.version()
    for s in skipped:
        print("skipped: " + s, file=sys.stderr)

    def on_term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)

    bench = Bench(a, tools)
    bench.notes += ["skipped " + s for s in skipped]
    if Pm2 in map(type, tools):
        bench.notes.append("pm2's stop request: %s" % ("`pm2 kill` (timed from spawning the CLI)"
                                                        if a.pm2_stop == "kill" else "SIGTERM to its God daemon"))
    status = 0
    try:
        bench.run()
    except KeyboardInterrupt:
        print("interrupted; cleaning up", file=sys.stderr)
        status = 130
    except Exception:
        import traceback
        traceback.print_exc()
        status = 1
    finally:
        try:
            left = bench.finish()
        except Exception as e:
            print("clean-up failed: %s" % e, file=sys.stderr)
            status = 1
            left = 0
    if left:
        print("final sweep killed %d left-over processes" % left, file=sys.stderr)
        status = status or 1
    text = report(bench, tools, versions)
    print(text)
    if a.out:
        Path(a.out).write_text(text)
    if a.json:
        Path(a.json).write_text(json.dumps({"results": bench.results, "samples": bench.samples,
                                            "failures": bench.failures,
                                            "notes": bench.notes, "versions": versions}, indent=1))
    return status


if __name__ == "__main__":
    sys.exit(main())
