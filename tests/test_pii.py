"""PII guard: validators, recognizers, overlaps, masking, streaming, and quality on a labelled
set (tests/data/pii_labelled.jsonl, generated once by a seeded script: IDs and cards carry
computed check digits, emails and IPs are documentation ones)."""

import datetime
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenmill.security.pii import (
    RECOGNIZERS,
    Finding,
    Kind,
    PiiMode,
    card_valid,
    cn_id_valid,
    detect,
    guard,
    luhn_valid,
    mask,
    presidio_findings,
    resolve,
    score,
    score_table,
)
from tokenmill.security.pii_stream import StreamMasker

LABELLED: list[dict[str, Any]] = [
    json.loads(line)
    for line in (Path(__file__).parent / "data" / "pii_labelled.jsonl").read_text().splitlines()
]
ID = "11010519491231002X"  # GB 11643-1999's own worked example


def found(text: str) -> list[tuple[str, str]]:
    return [(f.kind, text[f.start : f.end]) for f in detect(text)]


def with_check(s17: str) -> str:
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return s17 + "10X98765432"[sum(int(c) * w for c, w in zip(s17, weights, strict=True)) % 11]


@pytest.mark.parametrize(
    ("number", "ok"),
    [
        (ID, True),
        (ID.lower(), True),
        (ID[:17] + "1", False),  # check character off
        (with_check("11010519491231003"), True),
        (with_check("11010519900230123"), False),  # 30 February
        (with_check("11010518991231123"), False),  # before 1900
        (with_check(f"110105{datetime.date.today().year + 1}0101123"), False),  # not born yet
        (ID[:17], False),
        ("1101051949123100X2", False),
    ],
)
def test_cn_id_checksum_and_birth_date(number: str, ok: bool) -> None:
    assert cn_id_valid(number) is ok


def test_luhn_and_card_brands() -> None:
    assert luhn_valid("79927398713") and not luhn_valid("79927398710")
    for test_card in (
        "4111111111111111",
        "5555555555554444",
        "2223003122003222",
        "378282246310005",
        "6011111111111117",
        "3530111333300000",
        "6200000000000005",
        "4222222222222",
    ):
        assert card_valid(test_card), test_card
    assert not card_valid("4111111111111112")  # Luhn off by one
    assert luhn_valid("1234567812345670") and not card_valid("1234567812345670")  # no brand
    assert luhn_valid("378282246310005") and not card_valid("3782822463100050")  # Amex is 15
    assert card_valid("4111-1111-1111-1111") and card_valid("4111 1111 1111 1111")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"身份证{ID}。", [("cn_id", ID)]),
        (f"id {ID}9 is too long", []),
        (
            "call 13800138000, +86 139 1234 5678 or 0086-137-0000-1111",
            [
                ("cn_mobile", "13800138000"),
                ("cn_mobile", "+86 139 1234 5678"),
                ("cn_mobile", "0086-137-0000-1111"),
            ],
        ),
        ("电话8615012345678转", [("cn_mobile", "8615012345678")]),
        ("12800138000 138001380001 1380013800", []),  # starts 12; 12 digits; 10 digits
        (
            "Visa 4111 1111 1111 1111, Amex 3782-822463-10005, 银联6200000000000005",
            [
                ("bank_card", "4111 1111 1111 1111"),
                ("bank_card", "3782-822463-10005"),
                ("bank_card", "6200000000000005"),
            ],
        ),
        ("4111111111111112 94111111111111111 4111 1111-1111 1111", []),  # Luhn; run; mixed
        (
            "Mail bob.smith+x@mail.example.com. Not user@localhost nor a@b.c",
            [("email", "bob.smith+x@mail.example.com")],
        ),
        (
            "from 192.0.2.1:80 and 198.51.100.255/24.",
            [("ip", "192.0.2.1"), ("ip", "198.51.100.255")],
        ),
        ("v1.2.3.4.5 10.0.19041.1 256.1.1.1 192.168.01.1 3.11.7", []),
        (
            "[2001:db8::1]:443, ::1, 2001:db8::. ::ffff:192.0.2.1",
            [
                ("ip", "2001:db8::1"),
                ("ip", "::1"),
                ("ip", "2001:db8::"),
                ("ip", "::ffff:192.0.2.1"),
            ],
        ),
        ("12:30:45 00:1A:2B:3C:4D:5E std::vector", []),
        # the longest valid match, as if the validator were part of the regex
        ("1:2:3:4:5:6:7:8:9", [("ip", "1:2:3:4:5:6:7:8")]),
        ("4111 1111 1111 1111 3", [("bank_card", "4111 1111 1111 1111")]),
    ],
)
def test_recognizers(text: str, expected: list[tuple[str, str]]) -> None:
    assert found(text) == expected


def test_kinds_filter() -> None:
    text = f"{ID} a@example.com"
    assert found(text) == [("cn_id", ID), ("email", "a@example.com")]
    assert [f.kind for f in detect(text, kinds=["email"])] == ["email"]
    with pytest.raises(ValueError, match="unknown"):
        detect(text, kinds=["ssn"])


def test_id_that_passes_luhn_is_only_an_id() -> None:
    # a Gansu (62...) ID is also a UnionPay-shaped 18-digit run
    both = next(
        n
        for seq in range(1000)
        if cn_id_valid(n := with_check(f"62010219900307{seq:03d}")) and card_valid(n)
    )
    assert found(f"号码{both}") == [("cn_id", both)]
    x_id = next(
        n
        for seq in range(1000)
        if (n := with_check(f"62010219900307{seq:03d}"))[-1] == "X" and card_valid(n[:17])
    )
    assert found(x_id) == [("cn_id", x_id)]  # longer than the 17-digit card inside it


def test_overlaps_become_one_finding_of_the_preferred_kind() -> None:
    picked = resolve(
        [
            Finding("bank_card", 0, 18),
            Finding("cn_id", 0, 18),
            Finding("ip", 30, 40),
            Finding("email", 32, 50),
            Finding("ip", 60, 65),
        ]
    )
    # same span: the more specific; otherwise the longer, over the union (nothing left over)
    assert picked == [Finding("cn_id", 0, 18), Finding("email", 30, 50), Finding("ip", 60, 65)]


def test_mask_placeholders_and_no_leftover_pii() -> None:
    masked, findings = mask(f"ID {ID}, mail a@example.com, ip ::1")
    assert masked == "ID [CN_ID], mail [EMAIL], ip [IP]"
    assert [f.kind for f in findings] == [Kind.CN_ID, Kind.EMAIL, Kind.IP]
    neighbours = [  # where masking one finding used to uncover another
        "13191056935+8613155714873",
        "2001:db8::6228303411711942031",
        "a@example.com.13800138000",
    ]
    for text in neighbours + [s["text"] for s in LABELLED]:
        assert detect(mask(text)[0]) == [], text


def test_guard_modes() -> None:
    text = "call 13800138000"
    assert guard(text, PiiMode.OFF).findings == []
    log = guard(text, PiiMode.LOG)
    assert log.text == text and len(log.findings) == 1 and not log.blocked
    assert guard(text, PiiMode.MASK).text == "call [CN_MOBILE]"
    assert guard(text, PiiMode.BLOCK).blocked and not guard("hello", PiiMode.BLOCK).blocked


def test_stream_masks_pii_split_across_chunks() -> None:
    m = StreamMasker()
    out = m.feed("please call 138")
    assert out == "please call" and m.held == 4  # " 138" could still become a number
    out += m.feed(" 0013 8000 thanks") + m.flush()
    assert out == "please call [CN_MOBILE] thanks"


def test_stream_lets_ordinary_text_through() -> None:
    m = StreamMasker()
    emitted = m.feed("The quick brown fox jumps over the lazy dog. 这是一段普通的中文。 And")
    assert emitted.startswith("The quick brown fox jumps over the lazy dog. 这是一段普通的中文。")
    assert m.held <= len(" And")
    longest = max(r.reach for r in RECOGNIZERS)
    for run in ("x" * 5000, "1:" * 2000, "1 " * 2000, "1." * 2000):  # as long as you like
        m.feed(run)
        assert m.held <= longest


def test_stream_char_by_char_on_labelled_set() -> None:
    for sample in LABELLED:
        m = StreamMasker()
        out = "".join(m.feed(c) for c in sample["text"]) + m.flush()
        assert out == mask(sample["text"])[0]


PIECES = [
    *sorted({p["value"] for s in LABELLED for p in s["pii"]}),
    ID,
    "x" * 70 + "@example.com",
    "a" * 480,
    "1 " * 20,
    "::",
    "2001:db8:",
    "+86",
    "0086-",
    "4111 1111",
    "1111 1111",
    "192.0.2.",
    ".1.",
    "@",
    "example.com",
    "6228303411711942031",
    "1:2:3:4:5:6:7:8:9",
    ".",
    ":",
]
NOISE = st.text(alphabet="0123456789 -+.:@_%xXabcdef\n\uff0c\u3002号gh", max_size=6)
TEXTS = st.lists(st.one_of(st.sampled_from(PIECES), NOISE), max_size=10).map("".join)


@settings(max_examples=400, deadline=None)
@given(text=TEXTS, data=st.data())
def test_stream_equals_mask_for_any_chunking(text: str, data: st.DataObject) -> None:
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=8)))
    m = StreamMasker()
    out = []
    for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True):
        out.append(m.feed(text[a:b]))
        assert m.held <= 2 * max(r.reach for r in RECOGNIZERS)  # a match may straddle
    out.append(m.flush())
    assert "".join(out) == mask(text)[0]


@settings(max_examples=300, deadline=None)
@given(text=TEXTS)
def test_masked_text_has_no_pii(text: str) -> None:
    assert detect(mask(text)[0]) == []


def test_presidio_missing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from tokenmill.security import pii

    pii._presidio.cache_clear()
    monkeypatch.setitem(sys.modules, "presidio_analyzer", None)  # import now fails
    with pytest.raises(RuntimeError, match=r"tokenmill\[pii\]"):
        presidio_findings("a@example.com")
    pii._presidio.cache_clear()


def test_presidio_findings() -> None:
    pytest.importorskip("presidio_analyzer", reason="the `pii` extra is not installed")
    assert "email_address" in {f.kind for f in presidio_findings("write to a@example.com")}


def test_precision_and_recall_on_labelled_set() -> None:
    assert len(LABELLED) >= 150
    scores = score(LABELLED)
    print("\n" + score_table(scores))
    assert scores["all"].precision >= 0.95
    assert scores["all"].recall >= 0.95
