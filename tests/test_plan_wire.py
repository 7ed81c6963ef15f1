"""Plans (JSON round trip, strategies within their shape) and wire profiles (decoding, framing)."""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from harness.plan import HALF_RESET, PAUSE, READABLE_SIZE, SEND, ClientPlan, Op, Plan, Shape, fit_utf8, plans
from harness.wire import (
    ACK,
    ERROR,
    HELLO,
    MAX_REPLY,
    OTHER,
    RELAY,
    ChatDecoder,
    ChatWire,
    Pfo1Decoder,
    Pfo1Wire,
    parse_chat_line,
    relay_entry,
)

SMALL = Shape(max_clients=4, max_ops=5, max_text=300)


@given(plans(replace(SMALL, faults=True, nemesis=("kill-restart", "stop-restart", "lock"))))
@settings(max_examples=30)
def test_plans_round_trip_through_json(plan: Plan) -> None:
    again = Plan.from_dict(Plan.from_dict(plan.to_dict()).to_dict())
    assert again.to_dict() == plan.to_dict()
    assert Plan.from_dict(__import__("json").loads(plan.to_json())).to_dict() == plan.to_dict()


@given(plans(replace(SMALL, faults=True, nemesis=("kill-restart", "stop-restart", "lock"))))
@settings(max_examples=10)
def test_a_load_sized_plan_written_unindented_reads_back_the_same(plan: Plan) -> None:
    per_copy = plan.size() - len(plan.faults) - len(plan.nemesis)  # what copying the clients adds
    big = replace(plan, clients=plan.clients * (READABLE_SIZE // per_copy + 1))
    text = big.to_json()
    assert big.size() > READABLE_SIZE and "\n" not in text  # the load path: one line, by orjson
    assert Plan.from_dict(json.loads(text)).to_dict() == big.to_dict()


def test_odd_values_in_a_load_sized_plan_read_back_as_they_were(tmp_path: Path) -> None:
    ops = [Op(SEND, "héllo \u2028 \ud800"), Op(PAUSE, seconds=float("nan")), Op(PAUSE, seconds=float("inf"))]
    big = Plan([ClientPlan(ops * (READABLE_SIZE // 3 + 1))], seed=2**70)
    big.save(tmp_path / "plan.json")
    again = Plan.load(tmp_path / "plan.json")
    assert again.seed == 2**70 and again.clients[0].ops[0].text == "héllo \u2028 \ud800"
    assert math.isnan(again.clients[0].ops[1].seconds) and again.clients[0].ops[2].seconds == math.inf


@given(plans(Shape(max_clients=3, max_ops=6, max_text=50, pipelining=False, half_messages=False, ack_safe=True)))
@settings(max_examples=30)
def test_plans_stay_within_their_shape(plan: Plan) -> None:
    assert 1 <= len(plan.clients) <= 3
    for c in plan.clients:
        for op in c.ops:
            assert op.kind != HALF_RESET and not op.pipelined
            if op.kind == SEND:
                assert len(op.text.encode()) <= 50 and "recibido" not in op.text.lower()
                assert not re.search(r"[\x00-\x08\x0a-\x1f\x7f]", op.text)
            if op.kind == PAUSE:
                assert 0 <= op.seconds <= SMALL.max_pause
    assert not plan.nemesis  # a shape without nemesis actions draws none


@given(plans(replace(SMALL, nemesis=("stop-restart", "lock"), stop_method="sigint")))
@settings(max_examples=60)
def test_drawn_nemesis_steps_are_valid_and_within_the_shape(plan: Plan) -> None:
    assert len(plan.nemesis) <= 1
    for step in plan.nemesis:
        assert step["action"] in ("stop-restart", "lock") and 0 < step["at"] <= 0.5
        if step["action"] == "stop-restart":
            assert step["method"] == "sigint"
        else:
            assert 0.1 <= step["seconds"] <= 1.5
    assert plan.size() == len(plan.clients) + sum(len(c.ops) for c in plan.clients) + len(plan.nemesis)


@given(st.text(), st.integers(min_value=0, max_value=50))
def test_fit_utf8_never_splits_a_character(text: str, limit: int) -> None:
    cut = fit_utf8(text, limit)
    assert len(cut.encode()) <= limit and text.startswith(cut)


def test_plan_files_with_bad_data_are_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    for bad in ['{"clients": [{"ops": [{"kind": "explode"}]}]}', '{"nope": 1}', "not json"]:
        path = tmp_path / "plan.json"
        path.write_text(bad)
        try:
            Plan.load(path)
        except ValueError as exc:
            assert "plan" in str(exc)
        else:
            raise AssertionError(f"accepted {bad!r}")


CHAT_STREAM = (
    "HELLO 127.0.0.1:5555 4096\n"
    "Mensaje recibido: 2026-11-28T10:00:00.000-03:00 id=7 cid=ab.1.1\n"
    "Mensaje recibido: 2026-11-28T10:00:00.000-03:00 id=7 cid=ab.1.1 dup\n"
    "MSG 8 2026-11-28T10:00:01.000-03:00 127.0.0.1:6000 [ab.2.1] hola ñandú\n"
    "ERROR store cid=ab.1.2 write failed\n"
    "ERROR too-long line longer than 4096 bytes: nothing stored\n"
).encode()


@given(st.lists(st.integers(min_value=0, max_value=len(CHAT_STREAM)), max_size=20))
def test_chat_decoder_ignores_how_the_stream_is_cut(cuts: list[int]) -> None:
    whole = ChatDecoder().feed(CHAT_STREAM)
    d = ChatDecoder()
    pieces, last = [], 0
    for c in [*sorted(cuts), len(CHAT_STREAM)]:
        pieces.extend(d.feed(CHAT_STREAM[last:c]))
        last = c
    assert pieces == whole
    kinds = [r.kind for r in whole]
    assert kinds == [HELLO, ACK, ACK, RELAY, ERROR, ERROR]
    assert (whole[1].row, whole[1].cid, whole[1].dup, whole[2].dup) == (7, "ab.1.1", False, True)
    assert (whole[3].row, whole[3].sender, whole[3].text) == (8, "127.0.0.1:6000", "[ab.2.1] hola ñandú")
    assert (whole[4].code, whole[4].cid, whole[5].cid) == ("store", "ab.1.2", None)


@given(st.sampled_from([4096, 65536, 1 << 20]), st.integers(min_value=0, max_value=3))
@settings(max_examples=12)
def test_an_endless_line_is_reported_once_and_memory_stays_bounded(chunk: int, lines_after: int) -> None:
    d = ChatDecoder()
    replies = d.feed(b"HELLO x\n")
    for _ in range((8 << 20) // chunk):  # 8 MB without a newline
        replies += d.feed(b"x" * chunk)
        assert len(d._buf) <= MAX_REPLY + chunk
    replies += d.feed(b"x\n" + b"Mensaje recibido: T id=3\n" * lines_after)
    assert [r.kind for r in replies] == [HELLO, OTHER] + [ACK] * lines_after
    assert replies[1].line.endswith(f"(a line of over {MAX_REPLY} bytes, cut)") and len(replies[1].line) < 300


_WORD = st.sampled_from(["12", "٣", "", "T1", "h:1", "a\tb", "a\x1cb", "ñ", "\x85", "x y"])
_SEP = st.sampled_from([" ", " ", " ", "  ", "\t"])
_TEXT = st.sampled_from(["", "[a.1.2] hi", "[a.1.2", "[]x", "[ñ.1.1] ñandú", " lead", "tail\r", "\r"])
# Lines shaped like relays (and near misses): a kind word, a row, a timestamp, a sender, a text.
_RELAY_LIKE = st.builds(
    lambda kind, row, a, ts, b, sender, c, text: f"{kind}{row}{a}{ts}{b}{sender}{c}{text}",
    st.sampled_from(["MSG ", "MSG ", "HIST ", "MSG", "MS ", "Mensaje recibido: T id=3", "ERROR x "]),
    _WORD, _SEP, _WORD, _SEP, _WORD, _SEP, _TEXT,
)  # fmt: skip


@given(
    st.lists(_RELAY_LIKE, max_size=8),
    st.sampled_from([None, 3, 17]),
    st.lists(st.tuples(st.integers(0, 400), st.sampled_from([b"\xff", b"\xe2\x82", b"\xc3", b"\xf0\x9f\x98"]))),
)
def test_chat_decoder_collects_relays_exactly_as_parsed_replies_describe_them(
    lines: list[str], cut: int | None, junk: list[tuple[int, bytes]]
) -> None:
    # The decoder's fast path for relays (a burst's N-1 relays per message) must keep what the
    # full parse of each line alone says: the same lines are relays, with the same row, checksum
    # and token, in order; the other replies are the same.
    stream = "".join(line + "\n" for line in lines).encode() + b"\xff\xfe\n"
    for at, bad in junk:  # invalid and cut UTF-8 anywhere, also just before a newline
        at %= len(stream)
        stream = stream[:at] + bad + stream[at:]
    slow = [parse_chat_line(raw.rstrip(b"\r").decode("utf-8", "replace")) for raw in stream.split(b"\n")[:-1]]
    assert ChatDecoder().feed(stream) == slow
    expected = [relay_entry(r.row, r.text or "") for r in slow if r.kind == RELAY and not r.dup]
    fast = ChatDecoder()
    fast.relays = []
    parts = [stream] if cut is None else [stream[i : i + cut] for i in range(0, len(stream), cut)]
    replies = [r for part in parts for r in fast.feed(part)]
    assert fast.relays == expected
    assert replies == [r for r in slow if not (r.kind == RELAY and not r.dup)]


def test_chat_decoder_relay_fast_path_sees_relays_and_near_misses() -> None:
    d = ChatDecoder()
    d.relays = []
    replies = d.feed("MSG 5 T h:1 [a.1.2] hi\r\nMSG 6 T\th:1 x\nHIST 7 T h:1 [a.1.1] old\nMSG ٣ T h x\n".encode())
    assert d.relays == [relay_entry(5, "[a.1.2] hi"), (3, relay_entry(3, "x")[1], None)]
    assert [(r.kind, r.dup) for r in replies] == [(OTHER, False), (RELAY, True)]


def test_chat_wire_encodes_ids_and_literal_text() -> None:
    w = ChatWire()
    assert w.encode("[t] /quit", "t") == b"/id t [t] /quit\n"
    assert parse_chat_line("Mensaje recibido: X id=3").row == 3


@given(st.integers(min_value=1, max_value=6), st.lists(st.integers(min_value=0, max_value=400), max_size=8))
def test_pfo1_decoder_counts_acks_however_they_are_split_or_merged(n: int, cuts: list[int]) -> None:
    stream = "".join(f"Mensaje recibido: [2026-11-28 10:00:0{i}]\n" for i in range(n)).encode()
    d = Pfo1Decoder(re.compile("Mensaje recibido"))
    got, last = 0, 0
    for c in [*sorted(x % (len(stream) + 1) for x in cuts), len(stream)]:
        got += len(d.feed(stream[last:c]))
        last = c
    assert got == n


def test_pfo1_framings() -> None:
    assert Pfo1Wire("ok", "éxito", "raw").encode("[t] hola", None) == b"[t] hola"
    assert Pfo1Wire("ok", "éxito", "newline").encode("hola", None) == b"hola\n"
    framed = Pfo1Wire("ok", "éxito", "length64").encode("ñ", None)
    assert framed[:64].strip() == b"2" and framed[64:] == "ñ".encode() and len(framed) == 66
    assert Pfo1Wire("ok", "salir", "newline").exit_bytes() == b"salir\n"
