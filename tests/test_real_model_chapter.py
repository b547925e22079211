"""The chapter "An SAE on a real model" (book/real_model.md): every box and solution asserted on
the chapter's own results (its activations and its SAE, read from the book build's result
cache), and the numbers its prose glues checked against the results they describe."""

from __future__ import annotations

import re

import pytest
import torch
from claims import claims

from toy_lib import metrics

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ns(chapter):
    return chapter("real_model")


@claims("box-real-model-activations")
def test_the_activations(ns):
    acts, glued = ns["acts"], ns["glued"]
    assert tuple(acts.acts.shape) == (100_000, 384) and acts.acts.dtype == torch.float16
    assert acts.layer == 3 and acts.context_length == 128
    assert set(acts.books.tolist()) == set(range(6)), "windows from all six novels"
    x = acts.acts.float()
    token_norm, mean_norm = float(x.norm(dim=1).mean()), float(x.mean(0).norm())
    assert glued["token_norm"] == pytest.approx(token_norm, rel=1e-4)
    assert glued["mean_norm"] == pytest.approx(mean_norm, rel=1e-4)
    assert mean_norm < token_norm and mean_norm > token_norm / 3, (mean_norm, token_norm)
    assert glued["top10_var"] < 0.35 and glued["top50_var"] < 0.7, (glued["top10_var"], glued["top50_var"])
    assert glued["n_tokens"] == 100_000 and glued["n_windows"] == acts.windows.shape[0]


def test_the_training_settings_are_the_glued_ones(ns):
    sae, glued = ns["sae"], ns["glued"]
    assert sae.config.d_in == 384 and sae.config.d_sae == 3072 and sae.config.k == (32,)
    recipe = sae.recipe
    assert (recipe["steps"], recipe["batch_size"], recipe["lr"]) == (
        glued["steps"],
        glued["batch"],
        glued["lr"],
    )
    assert glued["n_train"] + glued["n_test"] == 100_000
    assert not (ns["held_out"] & ~ns["held_out"]).any() and ns["test_x"].shape[0] == glued["n_test"]
    assert glued["samples_seen"] == glued["steps"] * glued["batch"]
    # the loss figure's caption: fast at first, still falling slowly at the end
    loss = sae.loss_history[:, 0]
    assert float(loss[40:50].mean()) < 0.6 * float(loss[:10].mean())
    assert float(loss[-25:].mean()) < float(loss[-75:-50].mean()) < float(loss[40:50].mean())


@claims("box-real-model-evaluation")
def test_the_evaluation(ns):
    glued, sae, test_x = ns["glued"], ns["sae"], ns["test_x"]
    codes = sae.encode(test_x)[0]
    ev = float(metrics.explained_variance(test_x, sae.decode(codes[None])[0]))
    assert glued["ev"] == pytest.approx(ev, abs=1e-6)
    assert 0.75 < ev < 0.9, ev  # the box: between 0.75 and 0.9
    assert float(metrics.l0(codes)) == pytest.approx(32, abs=0.5) and glued["l0"] == pytest.approx(
        32, abs=0.5
    )
    rates = ns["firing_rate"]
    assert int((rates == 0).sum()) == glued["n_dead"] <= 30, glued["n_dead"]  # at most 1% dead
    live = rates[rates > 0]
    assert float(live.max() / live.min()) > 1e3, "rates spread over at least three orders of magnitude"
    assert 0 < glued["rate_common"] < 0.2 * len(live), glued["rate_common"]  # a minority above 10%
    assert glued["rate_rare"] >= 100, glued["rate_rare"]  # some hundreds below 1 in 1,000
    assert glued["pca_ev"] < ev  # cross-check with the PCA exercise below


@claims("box-real-model-browser")
def test_the_browser(ns):
    glued, chosen, words = ns["glued"], ns["chosen"], ns["WORDS"]
    top_tokens, top_values, vocab = ns["top_tokens"], ns["top_values"], ns["vocab"]
    assert len(set(chosen)) == len(chosen) == len(words) + 1
    for j, word in zip(chosen, words):
        on_word = int(((top_tokens[j] == vocab(word)) & (top_values[j] > 0)).sum())
        assert on_word >= 15, (word, j, on_word)
    assert glued["min_on_word"] >= 15
    darcy_j = chosen[words.index("darcy")]
    assert glued["darcy_on_word"] == int(
        ((top_tokens[darcy_j] == vocab("darcy")) & (top_values[darcy_j] > 0)).sum()
    )
    assert glued["on_quote"] >= 10 and ns["hits"][chosen[-1]] == glued["on_quote"]
    rates = [float(ns["firing_rate"][j]) for j in chosen]
    assert all(r < 0.01 for r in rates[:-1]) and 0.01 < rates[-1] < 0.05, rates
    # the page: one section per latent, eight contexts each, the word highlighted in every one
    sections = ns["browser"].split("<section")[1:]
    assert len(sections) == len(chosen)
    for section, word in zip(sections, words):
        marked = re.findall(r"<mark[^>]*>(.*?)</mark>", section)
        assert len(marked) == 8 and all(m == word for m in marked), (word, marked)
        novels = set(re.findall(r"<li>[0-9.]+ · ([^:]+):", section))
        assert word in ("marianne", "darcy") or len(novels) >= 2, (word, novels)
    # the quote latent fires mostly on other quotation marks
    rows, _ = torch.nonzero(ns["latents"] == chosen[-1], as_tuple=True)
    assert float((ns["token_ids"][rows] == vocab('"')).float().mean()) > 0.5
    quote = re.findall(r"<mark[^>]*>(.*?)</mark>", sections[-1])
    assert len(quote) == 8 and all(m == "&quot;" for m in quote), quote


@claims("box-real-model-ablation")
def test_the_ablation(ns):
    ablations, glued, vocab = ns["ablations"], ns["glued"], ns["vocab"]
    assert set(ablations) == set(ns["WORDS"]) == {"marianne", "mother", "house", "name", "darcy"}
    for word in ("marianne", "mother", "house", "name"):
        assert ablations[word]["share"] > 0.75, (word, ablations[word])
    darcy = ablations["darcy"]
    assert darcy["share"] < 0.5 and darcy["n_active"] > 10 * darcy["n_word"], darcy
    assert glued["ablation_min_share"] == min(a["share"] for w, a in ablations.items() if w != "darcy")
    assert (glued["darcy_share"], glued["darcy_active"], glued["darcy_word"]) == (
        darcy["share"],
        darcy["n_active"],
        darcy["n_word"],
    )
    # "more than a third within three tokens after a title", recomputed here
    token_ids, latents = ns["token_ids"], ns["latents"]
    rows, _ = torch.nonzero(latents == darcy["latent"], as_tuple=True)
    rows = rows[token_ids[rows] != vocab("darcy")]
    titles = torch.tensor(
        [vocab(t) for t in ("mr", "mrs", "miss", "sir", "lady", "colonel", "captain", "admiral", "lord")]
    )
    before = torch.stack([token_ids[(rows - d).clamp_min(0)] for d in (1, 2, 3)], 1)
    after_title = float(torch.isin(before, titles).any(1).float().mean())
    assert after_title > 1 / 3 and glued["darcy_after_title"] == pytest.approx(after_title), after_title
    # "on "rush(worth)", "jennings", "thorpe" and other family names": among its commonest other tokens
    common = torch.bincount(token_ids[rows]).topk(5).indices.tolist()
    assert {"rush", "jennings", "thorpe"} <= {ns["acts"].vocab[i] for i in common}, common


@claims("ex-real-model-pca")
def test_pca_explains_less_than_the_sae(ns):
    assert ns["glued"]["pca_ev"] < ns["glued"]["ev"] - 0.1, (ns["glued"]["pca_ev"], ns["glued"]["ev"])


@claims("ex-real-model-sentence")
def test_the_latent_fires_on_its_word_in_a_new_sentence(ns):
    f, ids, chosen, vocab, word = ns["f"], ns["ids"], ns["chosen"], ns["vocab"], ns["WORDS"][0]
    j = chosen[0]
    with_word, without = f[0, :, j], f[1, :, j]
    on = ids[0] == vocab(word)
    assert on.any() and (with_word[on] > 0).all(), with_word
    assert (with_word[~on] == 0).all() and (without == 0).all(), (with_word, without)
