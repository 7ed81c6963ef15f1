"""``chat-harness doctor`` and ``init`` against real PFO1-style servers: a right file is confirmed, every
wrong claim is named with a fix, and ``init`` writes, from the code and one run, a file the doctor accepts.

A fixed-port server runs in a network namespace of its own where the platform allows it (then these
tests run side by side); otherwise they share port 5000 and run one after another.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness import isolation
from harness.init import guess
from harness.target import load_target

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SERVERS = HERE / "pfo1_servers"

pytestmark = [pytest.mark.timeout(300)]
if isolation.available() is None:
    pytestmark += [pytest.mark.xdist_group("port-5000"), pytest.mark.usefixtures("port_5000")]


def harness_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args], cwd=cwd, capture_output=True, text=True, timeout=240, check=False
    )


def test_the_doctor_confirms_a_right_file(tmp_path: Path) -> None:
    done = harness_cli("doctor", str(SERVERS / "hilos_basico.toml"), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "FAIL" not in done.stdout and "the target file matches the server" in done.stdout
    for claim in ("command / ready", "[pfo1] ack", "second message", "[log] table / columns", "the message's row"):
        assert f"ok   {claim}" in done.stdout, done.stdout
    assert "ok   stop: sigint ended it with exit code 0" in done.stdout


def test_the_doctor_names_every_wrong_claim_with_a_fix(tmp_path: Path) -> None:
    text = (SERVERS / "hilos_basico.toml").read_text(encoding="utf-8")
    wrong = (
        text.replace('cwd = "hilos_basico"', f'cwd = "{SERVERS / "hilos_basico"}"')
        .replace('stop = "sigint"', 'stop = "stdin-newline"')  # the server never reads its stdin
        .replace("stop_timeout = 5", "stop_timeout = 1")
        .replace('table = "mensajes"', 'table = "messages"')
    )
    wrong = wrong[: wrong.index("ack = ")] + "ack = 'Recibido OK'\n" + wrong[wrong.index("exit_word") :]
    path = tmp_path / "wrong.toml"
    path.write_text(wrong, encoding="utf-8")
    load_target(path)  # a valid file: only its claims are wrong
    done = harness_cli("doctor", str(path), cwd=tmp_path)
    out = done.stdout
    assert done.returncode == 1, out + done.stderr
    assert "FAIL [pfo1] ack: 'Recibido OK' does not match what the server answered: 'Mensaje recibido: " in out
    assert "fix: [pfo1] ack = 'Mensaje recibido'" in out
    assert "FAIL [log] table: no table 'messages'; the file has ['mensajes']" in out
    assert "fix: table = 'mensajes'" in out
    assert "FAIL stop: stdin-newline: still running after 1 s (killed)" in out
    assert 'fix: stop = "sigint"' in out


def test_the_doctor_names_the_exit_code_a_signal_leaves_and_the_key_that_declares_it(tmp_path: Path) -> None:
    # As a JVM does after its shutdown hooks: the stop is clean, its exit code is 128 + SIGINT.
    shutil.copytree(SERVERS / "cola_escritor", tmp_path / "jvm_like")
    code = tmp_path / "jvm_like" / "servidor.py"
    code.write_text(code.read_text(encoding="utf-8").replace("    main()\n", "    main()\n    raise SystemExit(130)\n"))
    text = (SERVERS / "cola_escritor.toml").read_text(encoding="utf-8").replace('"cola_escritor"', '"jvm_like"')
    path = tmp_path / "jvm_like.toml"
    path.write_text(text, encoding="utf-8")
    out = harness_cli("doctor", str(path), cwd=tmp_path).stdout
    assert "??   stop: sigint: exit code 130" in out, out
    assert "fix: exit code 130 is 128 + SIGINT, as a JVM exits on it" in out and "stop_exit_codes = [0, 130]" in out
    path.write_text(text.replace("stop_timeout = 5", "stop_timeout = 5\nstop_exit_codes = [0, 130]"), encoding="utf-8")
    done = harness_cli("doctor", str(path), cwd=tmp_path)
    assert done.returncode == 0 and "ok   stop: sigint ended it with exit code 130" in done.stdout, done.stdout


def test_the_doctor_tells_one_message_per_connection_and_one_session_apart(tmp_path: Path) -> None:
    for server, key, fix in (
        ("un_mensaje", "[pfo1] messages_per_connection", "messages_per_connection = 1"),
        ("una_sesion", "single_session", "single_session = true"),
    ):
        text = (SERVERS / f"{server}.toml").read_text(encoding="utf-8")
        text = text.replace(f'cwd = "{server}"', f'cwd = "{SERVERS / server}"')
        text = "\n".join(line for line in text.splitlines() if not line.startswith(("single_session", "messages_per")))
        path = tmp_path / f"{server}.toml"
        path.write_text(text + "\n", encoding="utf-8")
        done = harness_cli("doctor", str(path), cwd=tmp_path)
        assert done.returncode == 1 and f"FAIL {key}" in done.stdout and fix in done.stdout, done.stdout


EXPECTED_KEYS = ("port", "protocol", "single_session")
EXPECTED_LOG = ("table", "id", "content")
EXPECTED_PFO1 = ("framing", "exit_word", "messages_per_connection", "server_sees_exit_word")


@pytest.mark.parametrize(
    "server",
    # A variant of a server (its directory, other arguments: pool_propio_256) gives init nothing new to read.
    [p.stem for p in sorted(SERVERS.glob("*.toml")) if (SERVERS / p.stem).is_dir()] + ["pfo1_newline"],
)
def test_init_writes_a_file_the_doctor_accepts(tmp_path: Path, server: str) -> None:
    directory = ROOT / "examples" / server if server == "pfo1_newline" else SERVERS / server
    by_hand = load_target(directory.with_suffix(".toml"))
    done = harness_cli("init", str(directory), "-o", "guess.toml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "the target file matches the server" in done.stdout
    guessed = load_target(tmp_path / "guess.toml")
    for key in EXPECTED_KEYS:
        assert getattr(guessed, key) == getattr(by_hand, key), key
    for key in EXPECTED_LOG:
        assert getattr(guessed.log, key) == getattr(by_hand.log, key), key
    for key in EXPECTED_PFO1:
        assert getattr(guessed.pfo1, key) == getattr(by_hand.pfo1, key), key
    assert (guessed.pfo1.error is None) == (by_hand.pfo1.error is None)


def test_init_picks_the_file_that_serves_not_one_that_mentions_a_server_in_a_comment(tmp_path: Path) -> None:
    (tmp_path / "cliente.py").write_text("import socket  # unlike socketserver.TCPServer(...), a plain socket\n")
    (tmp_path / "main.py").write_text('HOST, PORT = "0.0.0.0", 5050\ns.bind((HOST, PORT))\ns.listen(5)\n')
    (tmp_path / "otro.py").write_text(
        "class S(socketserver.ThreadingTCPServer):\n    pass\n\nS(('', 5000), H).serve_forever()\n"
    )
    found = guess(tmp_path)
    assert (found.server, found.port) == ("main.py", 5050)  # main before otro; the client is not a server
    (tmp_path / "main.py").unlink()
    assert guess(tmp_path).server == "otro.py"
