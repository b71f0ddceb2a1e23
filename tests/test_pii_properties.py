# ruff: noqa: RUF001  (full-width forms are what these tests are about)
"""PII guard properties, for any text hypothesis makes of PII values, their fragments, context
words and noise: masked text has nothing left to find, and a streamed text masks exactly as the
whole does, however it is chunked."""

import json
from pathlib import Path
from unittest.mock import patch

from hypothesis import given, settings
from hypothesis import strategies as st

from tokenmill.security.pii import RECOGNIZERS, Finding, detect, mask
from tokenmill.security.pii import scan as scanning
from tokenmill.security.pii_stream import StreamMasker

LABELLED = [
    json.loads(line)
    for line in (Path(__file__).parent / "data" / "pii_labelled.jsonl").read_text().splitlines()
]
LONGEST = max(r.reach for r in RECOGNIZERS)

PIECES = [
    *sorted({p["value"] for s in LABELLED for p in s["pii"]}),
    "11010519491231002X",
    "x" * 70 + "@example.com",
    "a" * 480,
    "1 " * 20,
    "::",
    "2001:db8:",
    "+86",
    "0086-",
    "(021)",
    "4111 1111",
    "1111 1111",
    "192.0.2.",
    ".1.",
    "@",
    "example.com",
    "6228303411711942031",
    "1:2:3:4:5:6:7:8:9",
    "A123456",
    "(3)",
    "DE89 3704",
    "123-45-",
    # context words and what may follow them
    "passport ",
    "Passport No. ",
    "护照号码：",
    "SSN ",
    "HKID ",
    "澳门",
    "台胞证",
    "[EMAIL]",
    "１３８",
    "－",
    "\u3000",
    ".",
    ":",
]
NOISE = st.text(alphabet="0123456789 -+.:@_%()xXabcdefEGH\n\uff0c\u3002号gh", max_size=6)
TEXTS = st.lists(st.one_of(st.sampled_from(PIECES), NOISE), max_size=10).map("".join)


def _streamed(text: str, cuts: list[int]) -> str:
    m = StreamMasker()
    out = []
    for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True):
        out.append(m.feed(text[a:b]))
        assert m.held <= 2 * LONGEST  # a match may straddle
    return "".join(out) + m.flush()


@settings(max_examples=500, deadline=None)
@given(text=TEXTS, data=st.data())
def test_stream_equals_mask_for_any_chunking(text: str, data: st.DataObject) -> None:
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=8)))
    assert _streamed(text, cuts) == mask(text)[0]


@settings(max_examples=500, deadline=None)
@given(text=TEXTS)
def test_masked_text_has_nothing_left_to_find(text: str) -> None:
    assert detect(mask(text)[0]) == []


@settings(max_examples=300, deadline=None)
@given(text=TEXTS)
def test_looking_for_context_words_first_finds_the_same(text: str) -> None:
    # a long text is searched for what needs words before it only after those words; a short
    # one, whole: the two must agree (here on short texts, by making every text "long")
    whole = detect(text)
    with patch.object(scanning, "_SHORT", 0):
        assert detect(text) == whole


def test_a_long_text_finds_what_its_lines_do() -> None:
    lines = [s["text"] for s in LABELLED]
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line) + 1)
    expected = [
        Finding(f.kind, f.start + at, f.end + at)
        for line, at in zip(lines, offsets, strict=False)
        for f in detect(line)
    ]
    assert detect("\n".join(lines)) == expected


def test_stream_char_by_char_on_the_development_set() -> None:
    for sample in LABELLED:
        text = sample["text"]
        assert _streamed(text, list(range(1, len(text)))) == mask(text)[0], text


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
    for run in ("x" * 5000, "1:" * 2000, "1 " * 2000, "1." * 2000, "A1" * 2000):
        m.feed(run)  # as long as you like
        assert m.held <= LONGEST


def test_a_stream_of_selected_kinds_masks_only_those() -> None:
    text = "mail a@example.com from 10.2.3.4"
    m = StreamMasker(kinds=["email"])
    out = "".join(m.feed(c) for c in text) + m.flush()
    assert out == mask(text, kinds=["email"])[0] == "mail [EMAIL] from 10.2.3.4"
