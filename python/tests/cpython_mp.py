"""CPython's own ``Lib/test/_test_multiprocessing.py``, unmodified, with
shmq's Queue, SimpleQueue, JoinableQueue, Pipe and Pool in place of
``multiprocessing``'s.

    python python/tests/cpython_mp.py [--list] [--start fork,spawn,forkserver]
                                      [--timeout S] [-k PATTERN]

Runs every test of the installed CPython's file (the ``processes`` classes
and the plain test classes) whose source constructs a Queue, SimpleQueue,
JoinableQueue, Pipe or Pool, and the Pool classes whole, under each start method, one process per start
method (side by side), each test with a timeout (a hang fails). The tests
that read ``multiprocessing``'s private attributes (or test a difference
that shmq makes on purpose) are listed, with what they read, in
docs/PYTHON.md (*CPython's own tests*); they are skipped, and the runner
checks that each listed test exists and its source still names what the
list says.
Exit status 0 when every other selected test passes.

The replacement happens at import of this file, before the test module
binds ``multiprocessing.Queue`` and friends into its mixins; spawn and
forkserver children import this file again as ``__mp_main__`` (its path is
in their preparation data), so they run with the same classes.
"""

import multiprocessing
import multiprocessing.context

import shmq


def _replace():
    names = {
        "Queue": lambda self, maxsize=0: shmq.Queue(maxsize),
        "JoinableQueue": lambda self, maxsize=0: shmq.JoinableQueue(maxsize),
        "SimpleQueue": lambda self: shmq.SimpleQueue(),
        "Pipe": lambda self, duplex=True: shmq.Pipe(duplex),
        "Pool": lambda self, processes=None, initializer=None, initargs=(), maxtasksperchild=None: (
            shmq.Pool(processes, initializer, initargs, maxtasksperchild, self.get_context())
        ),
    }
    for name, method in names.items():
        # The context's SimpleQueue stays: multiprocessing's own Pool (the
        # managers' Pool, shmq.Pool's base) builds its pipes from it; the
        # tests construct theirs from the module name.
        if name != "SimpleQueue":
            setattr(multiprocessing.context.BaseContext, name, method)
        setattr(multiprocessing, name, getattr(shmq, name))


_replace()

import inspect  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import unittest  # noqa: E402

import test._test_multiprocessing as cpython  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DOC = os.path.join(HERE, "..", "..", "docs", "PYTHON.md")
CONSTRUCTS = re.compile(r"\b(Queue|SimpleQueue|JoinableQueue|Pipe|Pool)\(")
# Classes run whole: their pool is made in setUpClass.
WHOLE = ("WithProcessesTestPool", "WithProcessesTestPoolWorkerErrors", "WithProcessesTestPoolWorkerLifetime")
METHODS = ("fork", "spawn", "forkserver")
START = os.environ.get("SHMQ_CPYTHON_START", "fork")

# As CPython's test_multiprocessing_<method> modules do: the classes live in
# this module, where spawn and forkserver children find them again.
cpython.install_tests_in_module_dict(globals(), START)
_cpython_teardown = tearDownModule  # noqa: F821 (installed just above)


def tearDownModule():  # noqa: F811
    # Children a failed test left behind hold the resource tracker's pipe,
    # and CPython's tearDownModule waits for the tracker: end them first.
    for p in multiprocessing.active_children():
        print(f"killing {p}, left running by a test", flush=True)
        p.kill()
        p.join(10)
    _cpython_teardown()


def private_list():
    """The table of docs/PYTHON.md's *CPython's own tests* section:
    ``Class.test`` -> what it reads (a string its source contains)."""
    rows = {}
    with open(DOC, encoding="utf-8") as f:
        text = f.read()
    start = text.index("<!-- cpython-private: begin -->")
    end = text.index("<!-- cpython-private: end -->")
    for line in text[start:end].splitlines():
        m = re.match(r"\|\s*`([\w.]+)`\s*\|\s*`([^`]+)`", line)
        if m:
            rows[m.group(1)] = m.group(2)
    return rows


def suite_classes():
    """The test classes this module installed: the ``processes`` classes
    and the plain TestCase classes."""
    return {
        n: c
        for n, c in sorted(globals().items())
        if isinstance(c, type)
        and issubclass(c, unittest.TestCase)
        and getattr(c, "__module__", None) == __name__
        and not n.startswith(("WithThreads", "WithManager"))
    }


def selected():
    """(class name, test name, source) of each test whose source constructs
    a queue, a pipe or a pool, and of every test of the Pool classes."""
    out = []
    for cname, cls in suite_classes().items():
        for tname in sorted(unittest.TestLoader().getTestCaseNames(cls)):
            src = _source(getattr(cls, tname))
            if cname in WHOLE or CONSTRUCTS.search(src):
                out.append((cname, tname, src))
    return out


def _source(obj):
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):
        return ""


class Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise Timeout("the test ran past its timeout")


def run_one_method(method, timeout, pattern):
    """In a child of the runner: run the selection under ``method``."""
    import faulthandler

    private = private_list()
    classes = suite_classes()
    tests = unittest.TestSuite()
    count = 0
    seen = set()
    for cname, tname, src in selected():
        if pattern and pattern not in f"{cname}.{tname}":
            continue
        cls = classes[cname]
        key = f"{cname}.{tname}"
        if key in private:
            attr = private[key]
            if attr not in src and not any(attr in _source(k) for k in cls.__mro__):
                print(f"{key}: listed as reading {attr}, which it does not", flush=True)
                return 2
            seen.add(key)
            continue
        tests.addTest(cls(tname))
        count += 1
    stale = sorted(set(private) - seen) if not pattern else []
    if stale:
        print(f"listed in docs/PYTHON.md but not among the tests run: {stale}", flush=True)
        return 2
    print(f"[{method}] {count} tests ({len(seen)} listed, skipped)", flush=True)

    signal.signal(signal.SIGALRM, _alarm)

    class TimedResult(unittest.TextTestResult):
        def startTest(self, test):
            signal.alarm(timeout)
            # A hang with the GIL released ends the process (a failure).
            faulthandler.dump_traceback_later(timeout + 30, exit=True)
            super().startTest(test)

        def stopTest(self, test):
            signal.alarm(0)
            faulthandler.cancel_dump_traceback_later()
            super().stopTest(test)

        # Each failure as it happens: a run that hangs later still shows it.
        def addError(self, test, err):
            super().addError(test, err)
            self.stream.write(self.errors[-1][1])
            self.stream.flush()

        def addFailure(self, test, err):
            super().addFailure(test, err)
            self.stream.write(self.failures[-1][1])
            self.stream.flush()

    runner = unittest.TextTestRunner(stream=sys.stdout, verbosity=2, resultclass=TimedResult)
    result = runner.run(tests)  # runs the module's setUpModule and tearDownModule
    return 0 if result.wasSuccessful() else 1


def main(argv):
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--list", action="store_true", help="list the selection and exit")
    ap.add_argument("--start", default=",".join(METHODS), help="start methods")
    ap.add_argument("--timeout", type=int, default=60, help="seconds per test")
    ap.add_argument("--total", type=int, default=600, help="seconds for all start methods")
    ap.add_argument("-k", default="", help="only tests whose Class.test contains this")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.list:
        private = private_list()
        for cname, tname, _ in selected():
            key = f"{cname}.{tname}"
            mark = f"  (listed: {private[key]})" if key in private else ""
            print(f"{cname}.{tname}{mark}")
        return 0
    if a.one:
        return run_one_method(a.one, a.timeout, a.k)
    procs = {}
    t0 = time.monotonic()
    for m in a.start.split(","):
        log = open(os.path.join(os.environ.get("TMPDIR", "/tmp"), f"shmq-cpython-{m}-{os.getpid()}.log"), "w+")
        cmd = [sys.executable, os.path.abspath(__file__), "--one", m, "--timeout", str(a.timeout)]
        if a.k:
            cmd += ["-k", a.k]
        env = dict(os.environ, SHMQ_CPYTHON_START=m)
        p = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        procs[m] = (p, log)
    rc = 0
    for m, (p, log) in procs.items():
        try:
            p.wait(timeout=max(1, a.total - (time.monotonic() - t0)))
        except subprocess.TimeoutExpired:
            print(f"--- {m}: still running after {a.total} s: killed")
        # What a failed test left running (children that keep the resource
        # tracker's pipe open make its exit wait for ever) ends with it.
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()
        log.seek(0)
        out = log.read()
        log.close()
        os.unlink(log.name)
        summary = [l for l in out.splitlines() if re.match(r"(Ran \d+|OK|FAILED|\[)", l)]
        print(f"--- {m}: exit {p.returncode}: " + "; ".join(summary))
        if p.returncode != 0:
            rc = 1
            print(out)
    print(f"--- CPython's multiprocessing tests with shmq: {time.monotonic() - t0:.0f} s")
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
