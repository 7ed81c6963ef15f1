"""The relay check's whole-connection fast paths decide exactly as the per-relay loops they skip."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from harness.checks.base import Judgement
from harness.checks.delivery import _clean_receipts, _Committed, _missed, _received
from harness.log import Row

ROWS = st.integers(min_value=0, max_value=12)
TOKENS = st.sampled_from([None, "", "t1", "t2", "t3"])
# What can be wrong with a connection's relays (and one harmless change: none)
FLAWS = st.sampled_from(["none", "swap", "duplicate", "checksum", "phantom", "own", "old", "none-checksum"])


@given(
    st.dictionaries(ROWS, st.sampled_from([0, 1, 2]), min_size=1, max_size=12),
    st.lists(TOKENS, min_size=13, max_size=13),
    st.integers(min_value=0, max_value=3),
    st.dictionaries(st.sampled_from(["", "t1", "t2", "t3"]), st.integers(min_value=0, max_value=2), max_size=3),
    st.booleans(),
    FLAWS,
    st.randoms(use_true_random=False),
)
def test_clean_receipts_agree_with_the_per_relay_check(
    crc: dict[int, int],
    tokens: list[str | None],
    baseline: int,
    sender: dict[str, int],
    others: bool,
    flaw: str,
    rnd: Any,
) -> None:
    # A connection that received well, as most do (increasing rows with the stored checksums), then one flaw.
    relays: list[tuple[Any, ...]] = [(r, crc[r], tokens[r]) for r in sorted(crc) if r > baseline]
    if relays and flaw in ("swap", "duplicate", "checksum", "own", "old", "none-checksum"):
        i = rnd.randrange(len(relays))
        row, checksum, token = relays[i]
        if flaw == "swap" and len(relays) > 1:
            k = rnd.randrange(len(relays) - 1)
            relays[k], relays[k + 1] = relays[k + 1], relays[k]
        elif flaw == "duplicate":
            relays.insert(i, relays[i])
        elif flaw == "checksum":
            relays[i] = (row, checksum + 1, token)
        elif flaw == "none-checksum":
            relays[i] = (row, None, token)
        elif flaw == "own":
            sender = {**sender, "t1": 1}
            relays[i] = (row, checksum, "t1")
        elif flaw == "old":
            relays.insert(0, (baseline, crc.get(baseline, 0), token))
    elif flaw == "phantom":
        relays.append((99, rnd.choice([0, None]), None))  # None: what crc.get says of a row not in the log
    c = SimpleNamespace(conn=1, client=1, record=None, relays=relays)
    ix = SimpleNamespace(relay="others" if others else "all", row_by_id={r: Row(r, "x") for r in crc})
    j = Judgement()
    slow = _received(ix, c, crc, baseline, sender, j)  # type: ignore[arg-type]
    fast = _clean_receipts(c, crc, baseline, sender, others)  # type: ignore[arg-type]
    if fast is not None:  # it may leave a clean connection to the loop (rows at the baseline), never a dirty one
        assert not j.anomalies and fast == slow
    elif not j.anomalies:
        assert any(r <= baseline for r, _, _ in relays)  # the one case it leaves to the loop
    if flaw == "none" and not (others and any(sender.get(t) == 1 for _, _, t in relays if t)):
        assert fast is not None  # the usual connection takes the fast path


COMMIT = st.tuples(
    st.floats(min_value=0.5, max_value=9.5), st.floats(min_value=0.5, max_value=9.5), ROWS, st.integers(0, 2)
)


@given(
    st.lists(COMMIT, max_size=8, unique_by=lambda x: x[2]),
    st.floats(min_value=0, max_value=10),
    st.floats(min_value=0, max_value=10),
    st.sets(ROWS),
    st.integers(min_value=0, max_value=2),
    st.booleans(),
)
def test_none_missed_agrees_with_the_per_message_check(
    commits: list[tuple[float, float, int, int]], hello: float, end_at: float, seen: set[int], client: int, others: bool
) -> None:
    committed = [(s, a, row, cl, SimpleNamespace(token=f"t{row}", evidence=lambda: [])) for s, a, row, cl in commits]
    c = SimpleNamespace(conn=1, client=client, record=None, hello=hello, end_at=end_at)
    ix = SimpleNamespace(relay="others" if others else "all", row_by_id={r: Row(r, "x") for r in range(13)})
    j = Judgement()
    fast = _Committed(committed).none_missed(c, seen, others)  # type: ignore[arg-type]
    _missed(ix, c, seen, committed, j)  # type: ignore[arg-type]
    if fast:
        assert not j.anomalies
    spans = all(s > hello and a < end_at for s, a, _, _, _ in committed)
    if spans and committed:
        assert fast == (not j.anomalies)  # a member there throughout is decided without the loop
