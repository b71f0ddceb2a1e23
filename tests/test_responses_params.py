"""The Responses and embeddings field tables (api/params.py) against OpenAI's own SDK, the
schemas and docs/openai.md. No engine needed."""

from pathlib import Path
from typing import Any

import pytest
from openai.types import embedding_create_params
from openai.types.responses import response_create_params

from tokenmill.api.params import EMBEDDINGS, RESPONSES, Fate, Rule, sift
from tokenmill.api.schemas import EmbeddingsRequest, ResponsesRequest, validate_body
from tokenmill.core.errors import InvalidRequest

DOCS = Path(__file__).parent.parent / "docs" / "openai.md"


def _keys(params: Any) -> set[str]:
    return set(params.__required_keys__ | params.__optional_keys__)


@pytest.mark.parametrize(
    ("sdk", "table", "schema"),
    [
        (
            _keys(response_create_params.ResponseCreateParamsBase) | {"stream"},
            RESPONSES,
            ResponsesRequest,
        ),
        (_keys(embedding_create_params.EmbeddingCreateParams), EMBEDDINGS, EmbeddingsRequest),
    ],
    ids=["responses", "embeddings"],
)
def test_every_field_the_sdk_sends_has_a_type_and_a_fate(sdk, table, schema):
    """A new SDK field fails here until someone decides what TokenMill does with it."""
    assert sorted(sdk - set(table)) == []
    assert sorted(set(table) - set(schema.model_fields)) == []


def _flat(table: dict[str, Rule], prefix: str = "") -> dict[str, str]:
    out = {}
    for name, rule in table.items():
        out[prefix + name] = str(rule.fate)
        out |= _flat(dict(rule.fields or {}), f"{prefix}{name}.")
    return out


def _doc_table(heading: str) -> dict[str, str]:
    """field -> fate, from the three-column table under `heading` in docs/openai.md."""
    section = DOCS.read_text().split(heading, 1)[1].split("\n#", 1)[0]
    fates = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[1] in set(Fate) and cells[0] != "any other field":
            for name in cells[0].split(","):
                fates[name.strip().strip("`")] = cells[1]
    return fates


@pytest.mark.parametrize(
    ("heading", "table"),
    [("### Responses request fields", RESPONSES), ("## Embeddings", EMBEDDINGS)],
)
def test_the_docs_list_every_field_with_its_fate(heading, table):
    assert _doc_table(heading) == _flat(table)


def test_background_and_conversations_are_refused_by_name():
    for field, value in (("background", True), ("conversation", "conv_1"), ("prompt", {})):
        with pytest.raises(InvalidRequest) as err:
            sift(RESPONSES, {"model": "m", "input": "hi", field: value})
        assert err.value.param == field
    kept, ignored = sift(RESPONSES, {"model": "m", "background": False, "include": []})
    assert kept == {"model": "m"} and ignored == ["background", "include"]


def test_nested_fields_are_sifted():
    body = {
        "model": "m",
        "text": {"format": {"type": "text"}, "verbosity": "low"},
        "reasoning": {"effort": "high", "summary": "auto"},
    }
    validate_body(ResponsesRequest, body)
    kept, ignored = sift(RESPONSES, body)
    assert kept["text"] == {"format": {"type": "text"}}
    assert kept["reasoning"] == {"effort": "high"}
    assert ignored == ["text.verbosity", "reasoning.summary"]


def test_embeddings_dimensions_are_refused():
    with pytest.raises(InvalidRequest) as err:
        sift(EMBEDDINGS, {"model": "m", "input": "x", "dimensions": 8})
    assert err.value.param == "dimensions"
