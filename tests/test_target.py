"""Target files and running servers: parsing with clear errors, start/ready/stop, no orphan processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from support import wait_for

from harness.target import ServerRun, TargetError, can_connect, kill_all, load_target, reference

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "target.toml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_the_readme_examples_load() -> None:
    ref = load_target(ROOT / "examples" / "reference.toml")
    assert ref.protocol == "chat" and ref.port == 0 and ref.log.ts == "fecha_envio" and ref.relay == "others"
    pfo1 = load_target(ROOT / "examples" / "pfo1.toml")
    assert (pfo1.port, pfo1.protocol, pfo1.stop, pfo1.relay, pfo1.normalize) == (
        5000,
        "pfo1",
        "sigint",
        "none",
        "strip",
    )
    assert pfo1.cwd == ROOT / "examples" / "pfo1" and pfo1.copy_cwd and pfo1.fixed_port
    assert load_target("reference").command == reference().command


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('name = "x"\n', "'command' is required"),
        ('name = "x"\ncommand = "python server.py"\n', "'command' must be a list"),
        ('name = "x"\ncommand = ["a"]\nprotocol = "http"\n', "'protocol' must be one of chat, pfo1"),
        ('name = "x"\ncommand = ["a"]\nport = "5000"\n', "'port' must be a int"),
        ('name = "x"\ncommand = ["a"]\nprot = "chat"\n', "unknown key(s) prot"),
        ('name = "x"\ncommand = ["a"]\n[log]\ntable = "m; DROP TABLE x"\n', "plain SQL identifier"),
        ('name = "x"\ncommand = ["a"]\n[pfo1]\nack = "(unclosed"\n', "not a valid regex"),
        ('name = "x"\ncommand = ["a"]\n[pfo1]\nframing = "json"\n', "'framing' must be one of"),
        ('name = "x"\ncommand = ["a"]\nready = "soon"\n', "'ready' must be"),
        ('name = "x"\ncommand = ["a"]\nstop_exit_codes = []\n', "'stop_exit_codes' must be a non-empty list"),
        ('name = "x"\ncommand = ["a"]\nstop_exit_codes = [0, "130"]\n', "'stop_exit_codes' must be a non-empty list"),
        ('name = "x"\ncommand = ["a"]\nstop_exit_codes = [true]\n', "'stop_exit_codes' must be a non-empty list"),
        ('name = "x"\ncommand = ["a"]\nstop_exit_codes = [256]\n', "'stop_exit_codes' must be a non-empty list"),
        ('name = "x"\ncommand = ["a"]\nstop_exit_codes = 130\n', "'stop_exit_codes' must be a list"),
        ("name = \n", "not valid TOML"),
    ],
)
def test_bad_target_files_get_one_clear_error(tmp_path: Path, body: str, message: str) -> None:
    path = write(tmp_path, body)
    with pytest.raises(TargetError) as err:
        load_target(path)
    assert message in str(err.value) and str(path) in str(err.value)


def test_a_target_may_declare_the_exit_codes_of_a_clean_stop(tmp_path: Path) -> None:
    assert reference().stop_exit_codes == (0,)
    jvm = load_target(write(tmp_path, 'name = "x"\ncommand = ["java", "Servidor"]\nstop_exit_codes = [0, 130, -2]\n'))
    assert jvm.stop_exit_codes == (0, 130, -2)


def test_a_missing_target_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(TargetError, match="cannot read target file"):
        load_target(tmp_path / "nope.toml")


@pytest.mark.parametrize("method", ["sigterm", "sigint", "stdin-newline"])
def test_reference_starts_on_a_free_port_and_stops_cleanly(tmp_path: Path, method: str) -> None:
    run = ServerRun(reference(), tmp_path / "srv").start()
    try:
        assert run.port > 0 and can_connect(run.host, run.port)
        wait_for(lambda: run.threads() == 3, what="main, accept and writer threads only")
        assert (run.fds() or 0) > 0
        result = run.stop(method)
        assert (result.exit_code, result.forced) == (0, False), run.stderr_tail()
        assert result.seconds < 2
        assert run.db_path.exists() and run.stdout_path.read_text().startswith("chat-server listening on")
    finally:
        run.kill()


def test_a_server_that_dies_at_start_is_reported_with_its_stderr(tmp_path: Path) -> None:
    target = reference().with_args("--max-line", "0")
    with pytest.raises(TargetError, match=r"exited with code 2 before it was ready.*must be positive"):
        ServerRun(target, tmp_path / "srv").start()
    missing = reference().__class__(name="ghost", command=("/no/such/program",))
    with pytest.raises(TargetError, match="cannot run '/no/such/program'"):
        ServerRun(missing, tmp_path / "ghost").start()


def test_copy_cwd_runs_a_fresh_copy(tmp_path: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "srv.py").write_text(
        "import socket, time\n"
        "open('started', 'w').write('x')\n"
        "s = socket.create_server(('127.0.0.1', 0)); open('port', 'w').write(str(s.getsockname()[1]))\n"
        "time.sleep(60)\n"
    )
    path = write(
        tmp_path,
        'name = "copy"\ncommand = ["{python}", "srv.py"]\ncwd = "app"\ncopy_cwd = true\n'
        'ready = "line:.*"\nstop = "kill"\n[log]\npath = "{workdir}/chat.db"\n',
    )
    target = load_target(path)
    run = ServerRun(target, tmp_path / "run")
    try:
        run.start()
        wait_for(lambda: (tmp_path / "run" / "app" / "started").exists(), what="the copy to run")
        assert not (app / "started").exists()
        assert run.db_path == tmp_path / "run" / "app" / "chat.db"
    finally:
        run.stop()


HARNESS = """
import sys, time
from pathlib import Path
from harness.target import ServerRun, reference, install_sigterm_cleanup
install_sigterm_cleanup()
run = ServerRun(reference(), Path(sys.argv[1])).start()
print(run.pid, flush=True)
time.sleep(120)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_no_orphan_server_when_the_harness_is_killed(tmp_path: Path, sig: int) -> None:
    harness = subprocess.Popen(
        [sys.executable, "-c", HARNESS, str(tmp_path / "srv")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert harness.stdout is not None
        server_pid = int(harness.stdout.readline())
        os.kill(server_pid, 0)  # alive
        harness.send_signal(sig)
        harness.wait(10)
        wait_for(lambda: not _alive(server_pid), what=f"server gone after {signal.Signals(sig).name} to the harness")
    finally:
        harness.kill()
        harness.wait(5)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


CTRL_C_SERVER = """
import socket, sys
s = socket.create_server(("127.0.0.1", int(sys.argv[1])))
print("listening", flush=True)
try:
    s.accept()
except KeyboardInterrupt:
    print("stopped by Ctrl+C", flush=True)
"""

IGNORING_HARNESS = """
import signal, sys
from pathlib import Path
from harness.target import ServerRun, load_target
signal.signal(signal.SIGINT, signal.SIG_IGN)  # as for "harness &" started by a non-interactive shell
run = ServerRun(load_target(sys.argv[1]), Path(sys.argv[2])).start()
result = run.stop("sigint")
print(result.exit_code, result.forced, flush=True)
"""


def test_a_harness_started_with_sigint_ignored_still_stops_a_ctrl_c_server(tmp_path: Path) -> None:
    (tmp_path / "srv.py").write_text(CTRL_C_SERVER)
    path = write(
        tmp_path,
        f'name = "ctrl-c"\ncommand = ["{{python}}", "{tmp_path / "srv.py"}", "{{port}}"]\nport = 0\n'
        'ready = "line:listening"\nstop = "sigint"\nstop_timeout = 5\n[log]\npath = "{workdir}/chat.db"\n',
    )
    done = subprocess.run(
        [sys.executable, "-c", IGNORING_HARNESS, str(path), str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.stdout.split() == ["0", "False"], done.stdout + done.stderr
    assert "stopped by Ctrl+C" in (tmp_path / "run" / "server.stdout").read_text()


FORKING_SERVER = """
import os, signal, socket, sys, time
s = socket.create_server(("127.0.0.1", int(sys.argv[1])))
kids = []
for _ in range(3):  # children that would serve clients
    pid = os.fork()
    if pid == 0:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        s.close()
        time.sleep(60)
        os._exit(0)
    kids.append(pid)
ended = os.fork()
if ended == 0:
    os._exit(0)  # a child that ends at once: a zombie until reaped
while open(f"/proc/{ended}/stat").read().split()[2] != "Z":  # ended, and never reaped
    time.sleep(0.01)
print("listening", flush=True)
try:
    s.accept()
except KeyboardInterrupt:
    if sys.argv[2] == "waits":
        for pid in kids:
            os.kill(pid, signal.SIGTERM)
            os.waitpid(pid, 0)
"""


def forking(tmp_path: Path, script: str, *args: str) -> ServerRun:
    """``script`` started as a server (its port first, then ``args``), stopped by SIGINT by default."""
    (tmp_path / "srv.py").write_text(script)
    argv = "".join(f', "{a}"' for a in args)
    target = load_target(
        write(
            tmp_path,
            f'name = "forks"\ncommand = ["{{python}}", "{tmp_path / "srv.py"}", "{{port}}"{argv}]\nport = 0\n'
            'ready = "line:listening"\nstop = "sigint"\nstop_timeout = 5\n[log]\npath = "{workdir}/chat.db"\n',
        )
    )
    return ServerRun(target, tmp_path / "run").start()


@pytest.mark.parametrize("children", ["waits", "leaves"])
def test_a_stop_counts_the_servers_own_processes_left_running(tmp_path: Path, children: str) -> None:
    run = forking(tmp_path, FORKING_SERVER, children)
    try:
        assert run.zombies() == 1  # the child that ended, never reaped; the three that sleep are not zombies
        result = run.stop()
    finally:
        run.kill()
    assert result.exit_code == 0 and not result.forced
    assert result.left == (0 if children == "waits" else 3)


CTRL_C_CHILDREN = """
import os, socket, sys, time
s = socket.create_server(("127.0.0.1", int(sys.argv[1])))
for _ in range(3):  # children that keep Python's KeyboardInterrupt, as most forking answers do
    if os.fork() == 0:
        s.close()
        try:
            time.sleep(60)
        finally:
            os._exit(0)
print("listening", flush=True)
try:
    s.accept()
except KeyboardInterrupt:
    pass
"""


@pytest.mark.parametrize(("method", "left"), [("sigint", 0), ("sigterm", 3)])
def test_sigint_reaches_the_process_group_as_ctrl_c_does_and_sigterm_the_server_alone(
    tmp_path: Path, method: str, left: int
) -> None:
    run = forking(tmp_path, CTRL_C_CHILDREN)
    try:
        result = run.stop(method)
    finally:
        run.kill()
    assert not result.forced
    assert result.exit_code == (0 if method == "sigint" else -15)
    assert result.left == left


DAEMONS = """
import os, socket, sys, time
s = socket.create_server(("127.0.0.1", int(sys.argv[1])))
pids = []
for double in (False, True):  # a child in a session of its own, and a daemon's double fork (its parent exits)
    r, w = os.pipe()
    if os.fork() == 0:
        s.close()
        os.setsid()
        if double and os.fork() != 0:
            os._exit(0)
        os.write(w, str(os.getpid()).encode())
        time.sleep(60)
        os._exit(0)
    pids.append(os.read(r, 32).decode())
open(sys.argv[2], "w").write(" ".join(pids))
print("listening", flush=True)
try:
    s.accept()
except KeyboardInterrupt:
    pass
"""


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux's /proc")
def test_processes_that_left_the_servers_group_are_counted_at_a_stop_and_killed(tmp_path: Path) -> None:
    run = forking(tmp_path, DAEMONS, str(tmp_path / "pids"))
    try:
        pids = [int(p) for p in (tmp_path / "pids").read_text().split()]
        assert all(_running(pid) for pid in pids)
        result = run.stop("sigint")  # Ctrl+C reaches the server's group, not the sessions its children made
    finally:
        run.kill()
    assert result.exit_code == 0 and not result.forced
    assert result.left == 2
    _gone(pids)


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux's /proc")
def test_kill_all_kills_what_a_server_started_outside_its_group(tmp_path: Path) -> None:
    run = forking(tmp_path, DAEMONS, str(tmp_path / "pids"))
    try:
        pids = [int(p) for p in (tmp_path / "pids").read_text().split()]
        kill_all()  # as at the harness's exit, or on Ctrl+C
        _gone([run.pid, *pids])
    finally:
        run.kill()


def _gone(pids: list[int]) -> None:
    deadline = time.monotonic() + 5
    while any(_running(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.02)  # another process's: nothing to wait on
    assert not any(_running(pid) for pid in pids)
