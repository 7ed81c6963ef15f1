"""Tracebacks in server output, and findings by root cause (both pure: text and report data in)."""

from __future__ import annotations

from harness import findings
from harness.tracebacks import parse

OUTPUT = """Servidor escuchando en 127.0.0.1:5000
Exception in thread Thread-3 (manejar_cliente):
Traceback (most recent call last):
  File "/usr/lib/python3.11/threading.py", line 1045, in _bootstrap_inner
    self.run()
  File "servidor.py", line 31, in manejar_cliente
    mensaje = data.decode("utf-8")
              ^^^^^^^^^^^^^^^^^^^^
UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff in position 0: invalid start byte
Traceback (most recent call last):
  File "servidor.py", line 60, in <module>
    main()
KeyboardInterrupt
Exception ignored in: <module 'threading' from '/usr/lib/python3.11/threading.py'>
Traceback (most recent call last):
  File "/usr/lib/python3.11/threading.py", line 1590, in _shutdown
    lock.acquire()
KeyboardInterrupt:
Traceback (most recent call last):
  File "a.py", line 1, in f
ValueError: first

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "a.py", line 3, in f
sqlite3.OperationalError: database is locked
"""


def test_tracebacks_tell_threads_from_the_main_one_and_ctrl_c_from_crashes() -> None:
    found = parse(OUTPUT)
    assert [(t.thread, t.exception.split(":")[0], t.interrupt, t.in_thread) for t in found] == [
        ("Thread-3 (manejar_cliente)", "UnicodeDecodeError", False, True),
        ("main", "KeyboardInterrupt", True, False),
        ("ignored", "KeyboardInterrupt", True, False),
        ("main", "sqlite3.OperationalError", False, False),  # a chained exception counts once, by its last line
    ]
    assert "manejar_cliente" in found[0].text and parse("no traceback here\n") == []


def test_two_threads_printing_at_once_are_two_tracebacks() -> None:
    frames = '  File "threading.py", line 982, in run\n    self._target()\n'
    text = (
        "Exception in thread Thread-48 (manejar_cliente):\nTraceback (most recent call last):\n"
        + frames
        + "Exception in thread Thread-54 (manejar_cliente):\nTraceback (most recent call last):\n"
        + frames
        + "ConnectionResetError: [Errno 104] Connection reset by peer\n"
        + frames
        + "ConnectionResetError: [Errno 104] Connection reset by peer\n"
    )
    found = parse(text)
    assert [t.thread for t in found] == ["Thread-48 (manejar_cliente)", "Thread-54 (manejar_cliente)"]
    assert "another thread" in found[0].exception and found[1].exception.startswith("ConnectionResetError")


ASYNCIO = """Unhandled exception in client_connected_cb
transport: <_SelectorSocketTransport closed fd=11>
Traceback (most recent call last):
  File "/srv/app/servidor.py", line 36, in atender
    texto = linea.decode("utf-8")
            ^^^^^^^^^^^^^^^^^^^^^
UnicodeDecodeError: 'utf-8' codec can't decode byte 0xe9 in position 16: invalid continuation byte
Task exception was never retrieved
future: <Task finished name='Task-7' coro=<relay() done, defined at /srv/app/servidor.py:50> exception=BrokenPipeError(32)>
Traceback (most recent call last):
  File "/srv/app/servidor.py", line 52, in relay
    await writer.drain()
  File "/usr/lib/python3.13/asyncio/streams.py", line 392, in drain
    await self._protocol._drain_helper()
BrokenPipeError: [Errno 32] Broken pipe
Future exception was never retrieved
future: <Future finished exception=ConnectionResetError(104, 'Connection reset by peer')>
Traceback (most recent call last):
  File "/srv/app/servidor.py", line 36, in atender
    linea = await reader.readuntil(b"\\n")
            ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/usr/lib/python3.13/asyncio/streams.py", line 677, in readuntil
    await self._wait_for_data('readuntil')
  File "/usr/lib/python3.13/asyncio/selector_events.py", line 1005, in _read_ready__data_received
    data = self._sock.recv(self.max_size)
ConnectionResetError: [Errno 104] Connection reset by peer
Future exception was never retrieved
future: <Future finished exception=ValueError('no')>
Traceback (most recent call last):
  File "/srv/app/servidor.py", line 70, in tarea
ValueError: no
Exception in callback _ProactorBasePipeTransport._call_connection_lost(None)
handle: <Handle _ProactorBasePipeTransport._call_connection_lost(None)>
Traceback (most recent call last):
  File "C:\\Python313\\Lib\\asyncio\\events.py", line 89, in _run
ConnectionResetError: [WinError 10054] An existing connection was forcibly closed by the remote host
Exception in callback StreamReaderProtocol.connection_made.<locals>.callback(<Task cancell...idor.py:37>>) \
at /usr/lib/python3.11/asyncio/streams.py:248
handle: <Handle StreamReaderProtocol.connection_made.<locals>.callback(<Task cancell...idor.py:37>>) \
at /usr/lib/python3.11/asyncio/streams.py:248>
Traceback (most recent call last):
  File "/usr/lib/python3.11/asyncio/events.py", line 80, in _run
asyncio.exceptions.CancelledError
Exception in callback vigilar() at /srv/app/servidor.py:80
handle: <TimerHandle when=12.5 vigilar() at /srv/app/servidor.py:80>
Traceback (most recent call last):
  File "/srv/app/servidor.py", line 82, in vigilar
ZeroDivisionError: division by zero
error: this line looks like asyncio's context but the traceback below is the main thread's
Traceback (most recent call last):
  File "servidor.py", line 9, in <module>
OSError: [Errno 98] Address already in use
"""


def test_asyncio_reports_tell_a_dead_client_coroutine_from_a_reset_the_server_handled() -> None:
    found = parse(ASYNCIO)
    assert [(t.thread, t.exception.split(":")[0], t.in_thread, t.harmless) for t in found] == [
        ("asyncio task (atender)", "UnicodeDecodeError", True, False),  # counts like a thread that died
        ("asyncio task (relay)", "BrokenPipeError", True, False),  # the server's own task: its error is its own
        ("asyncio", "ConnectionResetError", False, True),  # the stream's close future, finalised before its protocol
        ("asyncio", "ValueError", False, False),  # a future the server made: not the peer's doing
        ("asyncio", "ConnectionResetError", False, True),  # a transport's callback (the Windows proactor's)
        ("asyncio", "asyncio.exceptions.CancelledError", False, True),  # asyncio 3.11.7's own callback (gh-113538)
        ("asyncio callback (vigilar)", "ZeroDivisionError", True, False),  # the server's callback died
        ("main", "OSError", False, False),
    ]
    assert found[0].text.startswith("Unhandled exception in client_connected_cb\ntransport:")
    assert found[-1].text.startswith("Traceback") and all(t.to_dict()["harmless"] == t.harmless for t in found)


PY = "/usr/lib/python3.13/asyncio"
# What asyncio prints through a logging prefix, in debug mode, for an executor's job, an asyncio.Protocol,
# a TaskGroup, and the reset that ``await writer.wait_closed()`` raises again (real output, paths shortened).
ASYNCIO_MORE = f"""ERROR:asyncio:Exception in callback StreamReaderProtocol.connection_made.<locals>.callback(<Task \
cancell.../s.py:4>>) at /usr/lib/python3.11/asyncio/streams.py:248
handle: <Handle StreamReaderProtocol.connection_made.<locals>.callback(<Task cancell.../s.py:4>>)>
Traceback (most recent call last):
  File "/usr/lib/python3.11/asyncio/events.py", line 80, in _run
asyncio.exceptions.CancelledError
2026-12-01 03:24:59,851 ERROR asyncio: Unhandled exception in client_connected_cb
transport: <_SelectorSocketTransport fd=8 read=polling write=<idle, bufsize=0>>
Traceback (most recent call last):
  File "/srv/s_frag.py", line 8, in handle
    text = line.decode()
UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff in position 0: invalid start byte
Task exception was never retrieved
future: <Task finished name='Task-8' coro=<handle() done, defined at /srv/s_frag.py:4> exception=ConnectionResetError(104)>
source_traceback: Object created at (most recent call last):
  File "/srv/s_frag.py", line 17, in <module>
    asyncio.run(main(), debug=True)
  File "/usr/lib/python3.10/asyncio/streams.py", line 242, in connection_made
    self._task = self._loop.create_task(res)
Traceback (most recent call last):
  File "/srv/s_frag.py", line 6, in handle
    line = await reader.readline()
  File "/usr/lib/python3.10/asyncio/selector_events.py", line 862, in _read_ready__data_received
    data = self._sock.recv(self.max_size)
ConnectionResetError: [Errno 104] Connection reset by peer
Future exception was never retrieved
future: <Future finished exception=UnicodeDecodeError('utf-8', b'\\xff\\xfe\\n', 0, 1, 'invalid start byte')>
Traceback (most recent call last):
  File "/usr/lib/python3.13/concurrent/futures/thread.py", line 58, in run
    result = self.fn(*self.args, **self.kwargs)
  File "/srv/s_exec.py", line 7, in handle
    text = line.decode()
UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff in position 0: invalid start byte
Fatal error: protocol.data_received() call failed.
protocol: <__main__.Chat object at 0x7f1c59bad310>
transport: <_SelectorSocketTransport fd=8 read=polling write=<idle, bufsize=0>>
Traceback (most recent call last):
  File "{PY}/selector_events.py", line 1019, in _read_ready__data_received
    self._protocol.data_received(data)
  File "/srv/s_proto.py", line 10, in data_received
    text = line.decode()
UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff in position 0: invalid start byte
Unhandled exception in client_connected_cb
transport: <_SelectorSocketTransport fd=8 read=polling write=<idle, bufsize=0>>
  + Exception Group Traceback (most recent call last):
  |   File "/srv/s_tg.py", line 8, in handle
  |     async with asyncio.TaskGroup() as tg:
  |   File "{PY}/taskgroups.py", line 154, in __aexit__
  |     raise me from None
  | ExceptionGroup: unhandled errors in a TaskGroup (1 sub-exception)
  +-+---------------- 1 ----------------
    | Traceback (most recent call last):
    |   File "/srv/s_tg.py", line 6, in pump
    |     writer.write(("Mensaje recibido: " + line.decode()).encode()); await writer.drain()
    | UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff in position 0: invalid start byte
    +------------------------------------
Unhandled exception in client_connected_cb
transport: <_SelectorSocketTransport closed fd=9>
Traceback (most recent call last):
  File "/srv/servidor.py", line 70, in atender
    await writer.wait_closed()
  File "{PY}/streams.py", line 358, in wait_closed
    await self._protocol._get_close_waiter(self)
  File "{PY}/selector_events.py", line 1005, in _read_ready__data_received
    data = self._sock.recv(self.max_size)
ConnectionResetError: [Errno 104] Connection reset by peer
Servidor detenido
"""


def test_asyncio_reports_are_read_through_logging_prefixes_debug_mode_executors_protocols_and_groups() -> None:
    found = parse(ASYNCIO_MORE)
    assert [(t.thread, t.exception.split(":")[0], t.in_thread, t.harmless, t.late) for t in found] == [
        ("asyncio", "asyncio.exceptions.CancelledError", False, True, False),  # through "ERROR:asyncio:"
        ("asyncio task (handle)", "UnicodeDecodeError", True, False, False),  # through a timestamped prefix
        ("asyncio task (handle)", "ConnectionResetError", True, False, True),  # debug mode; printed when freed
        ("executor thread (handle)", "UnicodeDecodeError", True, False, True),  # run_in_executor(): a thread died
        ("asyncio protocol (data_received)", "UnicodeDecodeError", True, False, False),
        ("asyncio task (handle)", "UnicodeDecodeError", True, False, False),  # a TaskGroup's first member
        ("asyncio", "ConnectionResetError", False, True, False),  # wait_closed() raises the handled reset again
    ]
    assert found[5].exception.endswith("invalid start byte (in ExceptionGroup)")
    assert found[1].text.startswith("2026-12-01") and "Servidor detenido" not in found[-1].text


GROUPS_AND_LOOKALIKES = f"""Exception in thread asyncio-loop:
Traceback (most recent call last):
  File "/srv/s.py", line 9, in bucle
KeyError: 'k'
Exception in thread Thread-7 (handle):
  + Exception Group Traceback (most recent call last):
  |   File "/srv/s.py", line 21, in nested_grp
  |     raise ExceptionGroup("outer", [ExceptionGroup("inner", [OSError("o")]), ValueError("x")])
  | ExceptionGroup: outer (2 sub-exceptions)
  +-+---------------- 1 ----------------
    | ExceptionGroup: inner (1 sub-exception)
    +-+---------------- 1 ----------------
      | OSError: o
      +------------------------------------
    +---------------- 2 ----------------
    | ValueError: x
    +------------------------------------
Exception in thread Thread-8 (handle):
  + Exception Group Traceback (most recent call last):
  |   File "/srv/s.py", line 32, in member_chained
  |     raise ExceptionGroup("g", [e])
  | ExceptionGroup: g (1 sub-exception)
  +-+---------------- 1 ----------------
    | Traceback (most recent call last):
    |   File "/srv/s.py", line 29, in member_chained
    | ZeroDivisionError: division by zero
    |
    | During handling of the above exception, another exception occurred:
    |
    | Traceback (most recent call last):
    |   File "/srv/s.py", line 30, in member_chained
    | ValueError: member
    +------------------------------------
after
ERROR:root:Exception in callback for client 3
Traceback (most recent call last):
  File "/srv/s.py", line 51, in h
ZeroDivisionError: division by zero
Exception in callback _SelectorSocketTransport._call_connection_lost()
handle: <Handle _SelectorSocketTransport._call_connection_lost()>
Traceback (most recent call last):
  File "{PY}/events.py", line 89, in _run
  File "{PY}/selector_events.py", line 903, in _call_connection_lost
    self._protocol.connection_lost(exc)
  File "/srv/s_proto2.py", line 12, in connection_lost
    if exc is not None: raise exc
  File "{PY}/selector_events.py", line 1005, in _read_ready__data_received
ConnectionResetError: [Errno 104] Connection reset by peer
Task exception was never retrieved
future: <Task finished name='Task-2' coro=<limpieza() done, defined at /srv/s_bg.py:20> exception=KeyError('k')>
Traceback (most recent call last):
  File "/srv/s_bg.py", line 23, in limpieza
KeyError: 'k'
"""


def test_groups_are_named_by_their_first_member_and_look_alikes_of_asyncio_are_not_taken_for_it() -> None:
    found = parse(GROUPS_AND_LOOKALIKES)
    assert [(t.thread, t.exception, t.in_thread, t.harmless, t.died) for t in found] == [
        ("asyncio-loop", "KeyError: 'k'", True, False, ""),  # a thread that happens to be named so
        ("Thread-7 (handle)", "OSError: o (in ExceptionGroup)", True, False, ""),
        ("Thread-8 (handle)", "ValueError: member (in ExceptionGroup)", True, False, ""),  # its member's last
        ("main", "ZeroDivisionError: division by zero", False, False, ""),  # the server's own log, logger "root"
        (
            "asyncio callback (connection_lost)",
            "ConnectionResetError: [Errno 104] Connection reset by peer",
            True,
            False,
            "task",
        ),
        ("asyncio task (limpieza)", "KeyError: 'k'", True, False, "task"),  # a task nobody awaited: which client?
    ]


def scenario(name: str, anomalies: list[tuple[str, str]], failed_checks: tuple[str, ...] = ()) -> dict:  # type: ignore[type-arg]
    return {
        "name": name,
        "anomalies": [{"kind": k, "message": m} for k, m in anomalies],
        "checks": [{"name": c, "status": "fail", "detail": ""} for c in failed_checks],
    }


def test_one_defect_seen_in_many_scenarios_is_one_finding_and_its_consequences_point_at_it() -> None:
    scenarios = [
        scenario(
            "concurrent-burst",
            [("unanswered", "message x got no answer")],
            ("a second client is answered while the first is connected and idle",),
        ),
        scenario("pipelined", [("merged", "row 3 holds 2 messages"), ("unanswered", "y")]),
        scenario("sliced-stream", [("split", "message z was delivered by TCP in pieces")]),
        scenario("db-locked", [("lost", "message w was acknowledged but is not in the log")]),
        scenario(
            "shutdown-under-load",
            [
                ("serves-after-stop", "after sigint the server kept answering"),
                ("unclean-shutdown", "server did not exit within 5 s of sigint and was killed"),
            ],
        ),
        scenario("restart", [("unclean-shutdown", "server did not exit within 5 s of sigint and was killed")]),
    ]
    found = findings.annotate(scenarios)
    ids = [f["id"] for f in found]
    assert ids == ["ack-failed-insert", "no-framing", "serial", "stop-keeps-serving"]  # most serious first
    framing = found[1]
    assert framing["scenarios"] == ["pipelined", "sliced-stream"] and framing["count"] == 2
    unanswered = scenarios[0]["anomalies"][0]
    assert unanswered["finding"] == "unanswered" and unanswered["consequence_of"] == "serial"  # seen there
    assert scenarios[1]["anomalies"][1]["consequence_of"] == "serial"  # it acts everywhere; framing does not explain it
    hang = scenarios[5]["anomalies"][0]
    assert hang["consequence_of"] == "stop-keeps-serving"
    assert "restart" in found[3]["also_in"]
    assert all(f["title"] and f["hint"] for f in found)


def test_a_server_not_live_after_a_run_explains_its_leftover_threads_there_but_not_elsewhere() -> None:
    leak = ("resource-leak", "server threads: 2 before the clients, still 3 5 s after they left")
    scenarios = [
        scenario("slow-clients", [("not-live", "a fresh probe client was not served"), leak]),
        scenario("abrupt-disconnect", [leak]),
    ]
    found = findings.annotate(scenarios)
    assert [f["id"] for f in found] == ["not-live", "leaks"]
    assert scenarios[0]["anomalies"][1]["consequence_of"] == "not-live"  # the stuck server holds the probe's thread
    assert "consequence_of" not in scenarios[1]["anomalies"][0] and found[1]["scenarios"] == ["abrupt-disconnect"]


def test_every_anomaly_kind_the_checker_can_report_has_a_finding() -> None:
    import re
    from pathlib import Path

    import harness.checks as checks

    source = "\n".join(p.read_text() for p in Path(checks.__file__).parent.glob("*.py"))
    kinds = set(re.findall(r'j\.add\(\s*"([a-z-]+)"', source)) | {
        "lost",
        "corrupted",
        "partial-row",
        "unclean-shutdown",
    }
    kinds |= {"partial-row", "corrupted"}
    unmapped = {k for k in kinds if findings.of_anomaly({"kind": k, "message": ""}, "x") == "other"}
    assert not unmapped, unmapped


def test_a_server_that_hangs_up_on_silent_clients_is_named_for_it() -> None:
    from scenarios.idle_clients import SILENT

    assert findings.of_check(SILENT, "idle-clients") == "drops-idle-clients"
    assert findings.CATALOGUE["crashes"].explains >= {"drops-idle-clients"}  # a dead server hangs up on everyone
