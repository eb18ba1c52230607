"""A tiny random causal LM with a real byte-level BPE tokenizer, built in seconds for tests.

It goes through the same `save_pretrained` / `from_pretrained` path as real models, so tests
exercise the real loading, templating and streaming code; only the weights are random.
"""

from __future__ import annotations

from pathlib import Path

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

CORPUS = [
    "def add(a, b):\n    return a + b\n",
    "for i in range(10):\n    print(i)\n",
    "The function has a bug on line 3: the loop stops one element early.\n",
    "```python\ndef last(xs):\n    return xs[-1]\n```\n",
    "class Stack:\n    def push(self, item):\n        self.items.append(item)\n",
    "I wrote this code and it has a bug, what's wrong? Explain the fix.\n",
    "héllo wörld ünïcode 😀 — naïve café\n",
]


def build_tiny_model(
    folder: Path, *, chat_template: str | None, seed: int = 0, fim: bool = False
) -> Path:
    """Save a tiny Llama model and tokenizer to `folder`; `chat_template=None` means none.

    `fim=True` adds StarCoder-style fill-in-the-middle tokens to the vocabulary.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|end|>"]
    if fim:
        special += ["<fim_prefix>", "<fim_suffix>", "<fim_middle>"]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(CORPUS * 20, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=special[1:],
    )
    if chat_template is not None:
        fast.chat_template = chat_template
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
        bos_token_id=None,
    )
    model = LlamaForCausalLM(config)
    # Random weights end a turn at random; a model that never ends on its own makes the length,
    # time and cancel tests deterministic. (The end-of-turn path is tested on the real model.)
    model.generation_config.suppress_tokens = fast.convert_tokens_to_ids(special)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


def build_scripted_model(folder: Path, answer: str) -> Path:
    """Save a tiny model that answers every chat prompt with `answer`, then ends its turn.

    `answer` is one added token of the tokenizer, and the weights make the next token depend
    on the last one only: any prompt token leads to the answer token, the answer token to
    `<|im_end|>`. So greedy decoding gives exactly `answer` and a complete (end-of-turn) answer,
    through the real loading, templating, streaming and answer-parsing code.
    """
    import torch

    build_tiny_model(folder, chat_template=CHATML_TEMPLATE)
    from transformers import AutoTokenizer, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.add_tokens([answer])
    answer_id = tokenizer.convert_tokens_to_ids(answer)
    end_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    model = LlamaForCausalLM.from_pretrained(folder)
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    with torch.no_grad():
        for layer in model.model.layers:  # no layer adds anything to the token's embedding
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        embeddings = model.get_input_embeddings().weight
        embeddings.zero_()
        embeddings[:, 0] = 1.0  # every token points one way ...
        embeddings[answer_id] = 0.0
        embeddings[answer_id, 1] = 1.0  # ... but the answer token another
        head = model.get_output_embeddings().weight
        head.zero_()
        head[answer_id, 0] = 10.0
        head[end_id, 1] = 10.0
    model.generation_config.suppress_tokens = None
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
