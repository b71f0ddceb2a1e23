"""An image sent to a text-only model is the client's mistake: a 400 the SDK does not retry,
and nothing reaches the engine or the ledger (real engine)."""

import openai
import pytest

from tokenmill.testing import ServerProcess

IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}


@pytest.mark.parametrize(
    "part",
    [
        IMAGE,
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
        {
            "type": "file",
            "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"},
        },
    ],
)
def test_media_for_a_text_only_model_is_a_400_with_nothing_metered(
    server: ServerProcess, tenant_key, part: dict
):
    tenant, key = tenant_key
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=key)  # default: 2 retries
    content = [{"type": "text", "text": "What is this?"}, part]
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(
            model="smollm2-135m", messages=[{"role": "user", "content": content}]
        )
    assert err.value.code == "unsupported_content"
    assert err.value.param == "messages.0.content.1"
    assert "smollm2-135m" in err.value.message
    assert server.tenant_usage(tenant, 1, timeout=1.0) == []  # no record, no retries


def test_text_parts_alone_are_served(server: ServerProcess, tenant_key):
    _, key = tenant_key
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0)
    resp = client.chat.completions.create(
        model="smollm2-135m",
        messages=[{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
        max_tokens=3,
    )
    assert resp.usage is not None and resp.usage.completion_tokens > 0


def test_a_prompt_longer_than_the_context_is_a_400_with_openais_code(
    server: ServerProcess, tenant_key
):
    _, key = tenant_key
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0)
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(
            model="smollm2-135m",
            messages=[{"role": "user", "content": "word " * 20_000}],
            max_tokens=2,
        )
    assert err.value.code == "context_length_exceeded"
    assert "context size" in err.value.message
