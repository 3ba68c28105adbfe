#!/usr/bin/env python3
"""Check that HuggingFace transformers loads an exported BERT directory and reproduces our outputs.

    check_hf_roundtrip.py EXPORT_DIR INPUTS.safetensors OUTPUTS.safetensors [--tol 1e-4]
        [--head base|sequence-classification|question-answering]

EXPORT_DIR is loaded with transformers' AutoModel (--head base, the default),
AutoModelForSequenceClassification or AutoModelForQuestionAnswering (offline, float32, eval) and
run on `input_ids`, `attention_mask` and `token_type_ids` (token_type_ids default to zeros) from
INPUTS; every tensor of OUTPUTS that the model's output has (`last_hidden_state`,
`pooler_output`, `logits`, `start_logits`, `end_logits`) must match within the tolerance
(max-abs). Task heads must also come with the config transformers expects (architectures,
num_labels, problem_type). Exit 0: pass, 1: mismatch or load failure, 2: usage error.
"""
import argparse
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


class Parser(argparse.ArgumentParser):
    def error(self, message):  # usage errors: exit 2, as argparse does
        self.print_usage(sys.stderr)
        print(f"check_hf_roundtrip: error: {message}", file=sys.stderr)
        sys.exit(2)


def main():
    p = Parser(description=__doc__.split("\n\n")[0])
    p.add_argument("export_dir")
    p.add_argument("inputs")
    p.add_argument("outputs")
    p.add_argument("--tol", type=float, default=1e-4)
    p.add_argument("--head", choices=["base", "sequence-classification", "question-answering"],
                   default="base")
    a = p.parse_args()
    for path, kind in [(a.export_dir, "dir"), (a.inputs, "file"), (a.outputs, "file")]:
        if not (os.path.isdir(path) if kind == "dir" else os.path.isfile(path)):
            p.error(f"no such {'directory' if kind == 'dir' else 'file'}: {path}")

    import torch
    from safetensors.torch import load_file
    import transformers

    inputs, outputs = load_file(a.inputs), load_file(a.outputs)
    if "input_ids" not in inputs:
        p.error(f"{a.inputs} has no tensor 'input_ids' (has: {', '.join(sorted(inputs))})")
    names = ["last_hidden_state", "pooler_output", "logits", "start_logits", "end_logits"]
    if not any(n in outputs for n in names):
        p.error(f"{a.outputs} has none of {', '.join(names)} (has: {', '.join(sorted(outputs))})")
    auto = {"base": transformers.AutoModel,
            "sequence-classification": transformers.AutoModelForSequenceClassification,
            "question-answering": transformers.AutoModelForQuestionAnswering}[a.head]
    ids = inputs["input_ids"].long()
    feed = {"input_ids": ids,
            "attention_mask": inputs.get("attention_mask", torch.ones_like(ids)).long(),
            "token_type_ids": inputs.get("token_type_ids", torch.zeros_like(ids)).long()}

    try:
        model, info = auto.from_pretrained(a.export_dir, local_files_only=True, output_loading_info=True,
                                                attn_implementation="eager")
    except Exception as e:  # noqa: BLE001 - any load failure is a round-trip failure
        print(f"FAIL: transformers could not load {a.export_dir}: {type(e).__name__}: {e}")
        return 1
    # Missing or mis-shaped tensors would be silently re-initialised at random: name them.
    bad = sorted(info.get("missing_keys") or []) + [str(m) for m in info.get("mismatched_keys") or []]
    if bad:
        print(f"FAIL: {a.export_dir} lacks or mis-shapes tensors transformers needs: {', '.join(bad)}")
        return 1
    if info.get("unexpected_keys"):
        print(f"note: tensors transformers' {type(model).__name__} does not use: {', '.join(sorted(info['unexpected_keys']))}")
    if a.head != "base":
        expected = {"sequence-classification": "BertForSequenceClassification",
                    "question-answering": "BertForQuestionAnswering"}[a.head]
        if type(model).__name__ != expected or model.config.architectures != [expected]:
            print(f"FAIL: loaded {type(model).__name__} (architectures {model.config.architectures}), "
                  f"expected {expected}")
            return 1
        print(f"ok   {expected}: num_labels {model.config.num_labels}, "
              f"problem_type {model.config.problem_type}, id2label {model.config.id2label}")
    model = model.float().eval()
    with torch.no_grad():
        got = model(**feed)

    ok = True
    for name in names:
        if name not in outputs:
            continue
        want, have = outputs[name].float(), getattr(got, name, None)
        if have is None or have.shape != want.shape:
            print(f"FAIL {name}: shape {None if have is None else list(have.shape)} from transformers, "
                  f"{list(want.shape)} in {a.outputs}")
            ok = False
            continue
        diff = (have - want).abs().max().item()
        good = diff <= a.tol  # NaN compares False, so it fails
        ok &= good
        print(f"{'ok  ' if good else 'FAIL'} {name:18s} max-abs diff {diff:.3e} (tol {a.tol:g}) {list(want.shape)}")
    print("PASS: transformers reproduces the outputs" if ok else
          f"FAIL: transformers' outputs for {a.export_dir} differ from {a.outputs} by more than {a.tol:g}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
