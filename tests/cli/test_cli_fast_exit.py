"""`cortex sim` ends its process without the interpreter's teardown (cortex/gcscope.py
end_process_now: a month's heap freed object by object cost ~0.15 s of CPU), and loses nothing
by it: the summary on a pipe (block-buffered), the JSON report, the exit handlers, a thread still
running, the exit status. Other commands, a failed run, and a caller that runs commands in its
own process with their output captured (tests/clikit.py's batch) exit or return as before.
Checked in fresh processes: an object's finalizer that prints tells whether the teardown ran."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from clikit import cortex_batch

# A finalizer that prints at the teardown, an exit handler, then the console script's target.
SCRIPT = r"""
import atexit, json, sys, threading, time
class Teardown:
    def __del__(self):
        sys.__stderr__.write("teardown ran\n")
keep = Teardown()
atexit.register(lambda: print("exit handler ran"))  # to stdout: flushed after it
args, thread, pre, go_on = json.loads(sys.argv[1])
if thread:  # a non-daemon thread that outlives the command: the usual exit waits for it
    import cortex.cli.sim as clisim
    summary, ended = clisim.print_summary, threading.Event()
    def print_summary(report):
        summary(report)
        ended.set()
    clisim.print_summary = print_summary
    def late():
        ended.wait()
        time.sleep(0.3)
        print("thread finished")
    threading.Thread(target=late).start()
if pre:  # an earlier in-process run asked for the fast exit: main() must forget it
    from cortex.gcscope import leave_heap_to_os
    leave_heap_to_os()
sys.argv = ["cortex", *args]
from cortex.cli.main import main
if go_on:  # a caller that goes on after the command (bench/power_census.py)
    try:
        main(end_process=False)
    except SystemExit as done:
        print("went on after", done.code)
else:
    main()
"""
SIM = ["sim", "--fleet", "tiny", "--days", "0.2", "--quiet"]


def _run(
    args: list[str], thread: bool = False, pre: bool = False, go_on: bool = False
) -> subprocess.CompletedProcess[str]:
    # Without PYTHONUNBUFFERED stdout on a pipe is block-buffered: an exit without a flush
    # would lose the summary.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps([args, thread, pre, go_on])],
        capture_output=True,
        text=True,
        env={**env, "COLUMNS": "200", "NO_COLOR": "1"},
        timeout=300,
        check=False,
    )


def test_a_sim_ends_without_teardown_and_keeps_its_output_and_exit_handlers(tmp_path: Path) -> None:
    out = _run([*SIM, "--json", str(tmp_path / "r.json")])
    assert out.returncode == 0, out.stderr
    assert "events / wall (s)" in out.stdout  # the summary's last row, flushed
    assert "exit handler ran" in out.stdout
    assert "teardown ran" not in out.stderr  # the lever itself
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["fleet"]["name"] == "tiny"


def test_a_thread_still_running_is_waited_for_as_usual() -> None:
    out = _run(SIM, thread=True)
    assert out.returncode == 0, out.stderr
    assert "thread finished" in out.stdout
    assert "exit handler ran" in out.stdout


def test_other_commands_and_a_failed_sim_exit_as_usual() -> None:
    fleet = _run(["fleet", "show", "tiny"], pre=True)  # asked by an earlier run: forgotten
    assert fleet.returncode == 0, fleet.stderr
    assert "teardown ran" in fleet.stderr and "exit handler ran" in fleet.stdout
    bad = _run(["sim", "--fleet", "no-such-fleet", "--days", "0.2"])
    assert bad.returncode == 2 and bad.stderr.startswith("error:"), bad.stderr
    assert "teardown ran" in bad.stderr


def test_commands_run_in_one_process_with_captured_output_all_return(tmp_path: Path) -> None:
    first, second = cortex_batch([(SIM, tmp_path), (SIM, tmp_path)])
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    assert "events / wall (s)" in first.stdout and "events / wall (s)" in second.stdout


def test_a_caller_that_goes_on_after_the_command_gets_control_back() -> None:
    out = _run(SIM, go_on=True)
    assert out.returncode == 0, out.stderr
    assert "events / wall (s)" in out.stdout and "went on after 0" in out.stdout
    assert "teardown ran" in out.stderr  # its process ends as usual


def test_the_power_census_prints_its_counts_after_the_run() -> None:
    """bench/power_census.py runs `cortex sim` in its process and prints its counts after it:
    with the fast exit it printed the summary and ended (review20)."""
    script = Path(__file__).parents[2] / "bench" / "power_census.py"
    args = ["--fleet", "tiny", "--days", "0.2", "--power-policy", "full"]
    out = subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"},
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "events / wall (s)" in out.stdout
    assert "level moves:" in out.stdout and "passes stopped on the site budget" in out.stdout


def _run_module(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`python ARGS` with a finalizer that prints at the teardown, set up by a sitecustomize."""
    (tmp_path / "sitecustomize.py").write_text(
        "import sys\n"
        "class Teardown:\n"
        "    def __del__(self):\n"
        "        sys.__stderr__.write('teardown ran\\n')\n"
        "keep = Teardown()\n"
    )
    path = os.pathsep.join([str(tmp_path), *sys.path])
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": path, "COLUMNS": "200", "NO_COLOR": "1"},
        cwd=tmp_path,
        timeout=300,
        check=False,
    )


def test_python_m_cortex_ends_early_and_a_profiler_running_it_writes_its_profile(
    tmp_path: Path,
) -> None:
    """`python -m cortex` is the program (only runpy under main): it ends early. Under
    `python -m cProfile -o F -m cortex` the profiler writes F once the program returns: the
    early exit skipped that, and F was never written (review20; pyinstrument, memray, trace and
    pdb act the same way)."""
    plain = _run_module(["-m", "cortex", *SIM], tmp_path)
    assert plain.returncode == 0, plain.stderr
    assert "events / wall (s)" in plain.stdout and "teardown ran" not in plain.stderr
    prof = tmp_path / "sim.prof"
    profiled = _run_module(["-m", "cProfile", "-o", str(prof), "-m", "cortex", *SIM], tmp_path)
    assert profiled.returncode == 0, profiled.stderr
    assert "events / wall (s)" in profiled.stdout and "teardown ran" in profiled.stderr
    assert prof.stat().st_size > 0
