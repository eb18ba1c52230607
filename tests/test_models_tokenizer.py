"""A converted model's tokenizer splits text exactly as llama.cpp does on the same GGUF."""

from __future__ import annotations

from pathlib import Path

import pytest

from starchat_lsp.models.store import ModelStore

SAMPLES = [
    "\n 1 | for i in range(10):\n 12 | x = 3.14159 * 2024\n",
    (Path(__file__).parents[1] / "examples" / "off_by_one.py").read_text(),
    "héllo wörld 😀 0x1F600 — naïve café 1,234,567.89",
]


@pytest.mark.default_model
@pytest.mark.parametrize("name", ["smollm2-135m", "qwen2.5-coder-1.5b"])
def test_converted_tokenizer_matches_llama_cpp(name: str) -> None:
    llama_cpp = pytest.importorskip("llama_cpp")
    from transformers import AutoTokenizer

    # The small model is converted here if need be (seconds); the default one only when it
    # already is: its conversion takes minutes and GBs, made only for the transformers backend.
    if name != "smollm2-135m" and name not in {s.name for s in ModelStore().list() if s.converted}:
        pytest.skip(f"{name} is not converted for transformers")
    resolved = ModelStore().resolve(name)
    assert resolved.gguf_path is not None
    ours = AutoTokenizer.from_pretrained(ModelStore().converted(name))
    reference = llama_cpp.Llama(str(resolved.gguf_path), vocab_only=True, verbose=False)
    for text in SAMPLES:
        expected = reference.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        assert ours.encode(text, add_special_tokens=False) == expected, text
