"""The chapter "Beyond SAEs" (book/beyond.md): every box, solution and number-bearing sentence
asserted on the chapter's own results (read from the book build's result cache), with the
signature S9 of science-targets.md (Matryoshka against BatchTopK on the hierarchical toy)."""

from __future__ import annotations

import numpy as np
import pytest
from claims import claims

from toy_lib import exercises, metrics

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def beyond(chapter):
    return chapter("beyond")


def _parent_firing(ns, result, instance):
    """Recomputed independently of the chapter's helper: for each parent, the latent closest to it
    and the fraction of the parent's test inputs (and of those with a child) on which it fires."""
    hier, feats, acts = ns["hierarchy"], ns["test_features"], ns["test_acts"]
    cos = metrics.cosine_matrix(hier.directions[:3], result.W_dec[instance])  # (parent, latent)
    fires = result.encode(acts)[instance] > 0  # (input, latent)
    out = []
    for p in range(3):
        lat = int(cos[p].argmax())
        on = feats[:, p] > 0
        kids = (feats[:, ns["children"][p]] > 0).any(1)
        out.append(
            (
                lat,
                float(cos[p, lat]),
                float(fires[on, lat].float().mean()),
                float(fires[kids, lat].float().mean()),
            )
        )
    return out


def test_the_data_is_the_hierarchy_of_s9(beyond):
    """S9's toy: 20 orthogonal features in 20 dims; 3 parents at 0.15, each with 3 mutually
    exclusive children at 0.2 given the parent; 8 independent features at 0.05."""
    hier, feats = beyond["hierarchy"], beyond["test_features"]
    assert hier.n_features == 20 and hier.d_in == 20
    np.testing.assert_allclose(hier.directions @ hier.directions.T, np.eye(20), atol=1e-5)
    marg = hier.marginal_probabilities
    np.testing.assert_allclose(marg[:3], 0.15)
    np.testing.assert_allclose(marg[3:12], 0.15 * 0.2)
    np.testing.assert_allclose(marg[12:], 0.05)
    assert beyond["children"] == {0: [3, 4, 5], 1: [6, 7, 8], 2: [9, 10, 11]}
    for p, kids in beyond["children"].items():
        active = feats[:, kids] > 0
        assert active.sum(1).max() <= 1  # mutually exclusive
        assert not (active.any(1) & (feats[:, p] == 0)).any()  # a child only with its parent
    glued = beyond["glued"]
    assert glued["by_true_l0"] == pytest.approx(3 * 0.15 + 9 * 0.03 + 8 * 0.05)
    assert abs(glued["by_child_given_parent"] - 0.6) < 0.03  # "0.6 by construction"


def test_the_two_saes_share_their_settings(beyond):
    plain, nested = beyond["plain"], beyond["nested"]
    for r, arch in ((plain, "batchtopk"), (nested, "matryoshka")):
        assert r.config.architecture == arch and r.config.n_instances == 8
        assert r.config.d_sae == 20 and r.config.k == (2,) * 8
        assert r.recipe["steps"] == 1500 and r.recipe["batch_size"] == 512 and r.recipe["lr"] == 1e-3
    assert nested.config.prefix_widths == (4, 8, 16, 20) and nested.config.prefix_weights == (1.0,) * 4
    assert plain.recipe["instance_seeds"] == nested.recipe["instance_seeds"]
    assert beyond["best"] == {
        "BatchTopK": int(plain.final_loss.argmin()),
        "Matryoshka": int(nested.final_loss.argmin()),
    }


@claims("box-beyond-matryoshka")
def test_s9_batchtopk_absorbs_a_parent(beyond):
    """S9: the lowest-loss BatchTopK SAE has a parent latent silent on many of its parent's
    inputs, mostly those where a child fires; across the restarts many parent latents have holes."""
    plain, glued = beyond["plain"], beyond["glued"]
    best = beyond["best"]["BatchTopK"]
    rows = _parent_firing(beyond, plain, best)
    worst = min(rows, key=lambda r: r[2])
    assert worst[2] < 0.75, rows  # a clear hole (the target's 0.9, with margin)
    assert worst[3] < 0.5, rows  # silent on most inputs where a child fires
    assert glued["by_plain_worst_parent"] == pytest.approx(worst[2], abs=1e-6)
    assert glued["by_plain_worst_child"] == pytest.approx(min(r[3] for r in rows), abs=1e-6)
    # "absorbed into the child latents": a child's latent carries the worst parent's direction
    parent = rows.index(worst)
    cos = metrics.cosine_matrix(beyond["hierarchy"].directions, plain.W_dec[best])  # (feature, latent)
    carried = [float(cos[parent, int(cos[c].argmax())]) for c in beyond["children"][parent]]
    assert max(carried) > 0.5, carried
    holes = sum(r[2] < 0.9 for i in range(8) for r in _parent_firing(beyond, plain, i))
    assert holes == glued["by_plain_holes"] >= 6, holes
    assert glued["by_n_parent_latents"] == 24


@claims("box-beyond-matryoshka")
def test_s9_matryoshka_keeps_clean_parent_latents_in_its_first_prefix(beyond):
    """S9: the lowest-loss Matryoshka SAE's parent latents fire whenever the parent does (>= 0.9,
    here with margin), sit in the first prefix, point along their parents; no restart has a hole."""
    nested, glued = beyond["nested"], beyond["glued"]
    best = beyond["best"]["Matryoshka"]
    rows = _parent_firing(beyond, nested, best)
    assert min(r[2] for r in rows) >= 0.97, rows
    assert min(r[3] for r in rows) >= 0.95, rows  # including when a child fires
    assert len({r[0] for r in rows}) == 3  # three different latents
    assert max(r[0] for r in rows) < nested.config.prefix_widths[0], rows
    assert min(r[1] for r in rows) > 0.9, rows
    assert glued["by_nested_worst_parent"] == pytest.approx(min(r[2] for r in rows), abs=1e-6)
    assert glued["by_nested_max_latent"] == max(r[0] for r in rows)
    assert glued["by_nested_min_cosine"] == pytest.approx(min(r[1] for r in rows), abs=1e-5)
    holes = sum(r[2] < 0.9 for i in range(8) for r in _parent_firing(beyond, nested, i))
    assert holes == glued["by_nested_holes"] < glued["by_plain_holes"], holes
    assert holes <= 2


def test_the_checks_fail_where_the_chapter_would_be_wrong(beyond):
    """The S9 checks are not vacuous: on the Matryoshka SAE the absorption check finds no hole,
    and on the BatchTopK SAE the clean-parent check fails."""
    plain, nested = beyond["plain"], beyond["nested"]
    rows = _parent_firing(beyond, nested, beyond["best"]["Matryoshka"])
    assert not min(r[2] for r in rows) < 0.75
    rows = _parent_firing(beyond, plain, beyond["best"]["BatchTopK"])
    assert not min(r[2] for r in rows) >= 0.97


def test_the_price_is_reconstruction(beyond):
    """The prose: the Matryoshka SAE's whole-dictionary error is many times the BatchTopK SAE's,
    yet a small fraction of an input's mean squared norm."""
    plain, nested, glued = beyond["plain"], beyond["nested"], beyond["glued"]
    p = float(plain.final_mse[beyond["best"]["BatchTopK"]])
    n = float(nested.final_mse[beyond["best"]["Matryoshka"]])
    assert glued["by_plain_mse"] == pytest.approx(p) and glued["by_nested_mse"] == pytest.approx(n)
    assert n > 5 * p  # "many times larger"
    norm2 = float(beyond["test_acts"].square().sum(-1).mean())
    assert glued["by_nested_mse_fraction"] == pytest.approx(n / norm2)
    assert n / norm2 < 0.05  # "only a fraction"


def test_the_first_prefix_alone_reconstructs_worse(beyond):
    """The prose: the first prefix (4 latents) cannot reconstruct inputs with children or
    independent features; its error is much larger than the whole dictionary's."""
    nested = beyond["nested"]
    i = beyond["best"]["Matryoshka"]
    x = beyond["test_acts"][:4000]
    f = nested.encode(x)[i]
    first = f.clone()
    first[:, nested.config.prefix_widths[0] :] = 0
    whole = (x - nested.decode(f[None].expand(8, -1, -1))[i]).square().sum(-1).mean()
    part = (x - nested.decode(first[None].expand(8, -1, -1))[i]).square().sum(-1).mean()
    assert part > 5 * whole, (part, whole)


@claims("ex-beyond-matryoshka-loss")
def test_the_matryoshka_loss_solution_passes_its_checker(beyond, capsys):
    exercises.check_matryoshka_loss(beyond["matryoshka_loss"])
    assert "passed" in capsys.readouterr().out


def test_the_fix_costs_the_children(beyond):
    """The prose under the heatmap: each Matryoshka parent latent leans a little towards its
    children (cosine near 0.2 with each), and the worst-matched child is matched worse than by
    the plain SAE."""
    glued, hier, children = beyond["glued"], beyond["hierarchy"], beyond["children"]
    nested, plain = beyond["nested"], beyond["plain"]
    b = beyond["best"]["Matryoshka"]
    cos = metrics.cosine_matrix(hier.directions, nested.W_dec[b])
    lean = np.array([cos[children[p], int(cos[p].argmax())] for p in range(3)])
    assert ((lean > 0.1) & (lean < 0.3)).all(), lean  # "a little", "about 0.2"
    assert glued["by_parent_lean"] == pytest.approx(lean.mean(), abs=1e-6)
    kids = [c for p in range(3) for c in children[p]]
    worst_nested = metrics.max_cosines(hier.directions[kids], nested.W_dec[b]).min()
    worst_plain = metrics.max_cosines(hier.directions[kids], plain.W_dec[beyond["best"]["BatchTopK"]]).min()
    assert glued["by_nested_worst_child"] == pytest.approx(worst_nested, abs=1e-6)
    assert glued["by_plain_worst_child_match"] == pytest.approx(worst_plain, abs=1e-6)
    assert worst_nested < worst_plain - 0.1 and worst_nested < 0.7  # "only", clearly worse


def _transcoder_alignment(ns, instance):
    """Recomputed from the chapter's transcoder: for each toy feature, the best cosine of its
    direction W_i with an encoder column and of its output unit e_i with a decoder row, and which
    latents those are."""
    r, W = ns["transcoder"], ns["W_toy"][0]  # W: (hidden, feature)
    enc = metrics.cosine_matrix(W.T, r.W_enc[instance].T)  # (feature, latent)
    dec = metrics.cosine_matrix(np.eye(5, dtype=np.float32), r.W_dec[instance].numpy())
    return enc.max(-1), dec.max(-1), enc.argmax(-1), dec.argmax(-1)


def test_the_transcoder_replaces_the_toy_models_read_out(beyond):
    """Its settings: the 5 -> 2 toy model at S = 0.9, h -> x' = ReLU(W^T h + b), five ReLU latents."""
    r, toy = beyond["transcoder"], beyond["toy"]
    assert toy.config.n_features == 5 and toy.config.n_hidden == 2
    assert r.config.architecture == "relu" and r.config.d_in == 2 and r.config.d_sae == 5
    assert r.config.n_instances == beyond["glued"]["by_tc_restarts"] == 4
    assert r.W_dec.shape == (4, 5, 5)
    h, out, W, b = beyond["h_test"], beyond["out_test"], beyond["W_toy"], beyond["b_toy"]
    np.testing.assert_allclose(out.numpy(), np.maximum(h.numpy() @ W[0].numpy() + b[0].numpy(), 0), atol=1e-5)
    assert beyond["tc"] == int(r.final_loss.argmin())


@claims("box-beyond-transcoder")
def test_the_transcoders_latents_are_the_features(beyond):
    """The box: one latent per feature, the same latent reading along W_i and writing e_i, both
    with cosine near 1 (glued as printed)."""
    glued, tc = beyond["glued"], beyond["tc"]
    enc, dec, enc_latent, dec_latent = _transcoder_alignment(beyond, tc)
    assert sorted(enc_latent.tolist()) == list(range(5))  # a latent per feature
    assert (enc_latent == dec_latent).all()  # the same one reads and writes it
    assert enc.min() > 0.99 and dec.min() > 0.99, (enc, dec)
    assert glued["by_tc_min_enc_cos"] == pytest.approx(enc.min(), abs=1e-6)
    assert glued["by_tc_min_dec_cos"] == pytest.approx(dec.min(), abs=1e-6)


@claims("box-beyond-transcoder", "ex-beyond-transcoder")
def test_the_transcoder_predicts_far_better_than_a_linear_read_out(beyond):
    """The box and the solution: the transcoder's held-out error is a tiny fraction of E||x'||²,
    the best linear read-out of h (least squares with a bias, refitted here) a large one."""
    import torch

    glued, r, tc = beyond["glued"], beyond["transcoder"], beyond["tc"]
    h, out = beyond["h_test"], beyond["out_test"]
    norm2 = float(out.square().sum(-1).mean())
    tc_err = float((r.predict(h)[tc] - out).square().sum(-1).mean()) / norm2
    A = torch.cat([beyond["h_train"], torch.ones(len(beyond["h_train"]), 1)], 1)
    coef = torch.linalg.lstsq(A, beyond["out_train"]).solution
    lin_err = float((torch.cat([h, torch.ones(len(h), 1)], 1) @ coef - out).square().sum(-1).mean()) / norm2
    assert glued["by_tc_error"] == pytest.approx(tc_err, rel=1e-4)
    assert glued["by_linear_error"] == pytest.approx(lin_err, rel=1e-4)
    assert tc_err < 1e-3 and lin_err > 0.2 and tc_err < lin_err / 100, (tc_err, lin_err)


@claims("box-beyond-meta-sae")
def test_a_meta_sae_finds_the_parents_the_base_sae_absorbed(beyond):
    """The box: the base L1 SAE writes each child's parent into the child's latent (cosine 0.6-0.8
    with both); a four-latent meta-SAE on its 36 decoder rows gives each family of child latents
    its own meta-latent, pointing along the parent. Recomputed here from the two SAEs."""
    data, base, meta = beyond["meta_data"], beyond["base_sae"], beyond["meta_sae"]
    assert data.n_features == 36 and data.exclusive and base.config.d_sae == 36 and meta.config.d_sae == 4
    np.testing.assert_allclose(data.directions @ data.directions.T, np.eye(36), atol=1e-5)  # orthogonal
    assert meta.config.architecture == base.config.architecture == "relu"
    b = int(base.final_loss.argmin())
    m = int(meta.final_loss.argmin())
    assert (b, m) == (beyond["base_best"], beyond["meta_best"])
    rows = base.W_dec[b]
    cos = metrics.cosine_matrix(data.directions, rows)  # (feature, latent)
    feature = np.abs(cos).argmax(0)
    assert sorted(feature.tolist()) == list(range(36))  # one latent per feature
    family = np.where(feature < 4, feature, data.parents[feature])
    child = feature >= 4
    own = cos[feature, np.arange(36)][child]
    par = cos[family, np.arange(36)][child]
    assert ((0.6 < own) & (own < 0.8)).all() and ((0.6 < par) & (par < 0.8)).all(), (own, par)
    fires = (meta.encode(rows)[m] > 0).numpy()  # (latent, meta-latent)
    parent_cos = metrics.cosine_matrix(data.directions[:4], meta.W_dec[m])  # (parent, meta-latent)
    owner = parent_cos.argmax(0)
    assert sorted(owner.tolist()) == [0, 1, 2, 3]  # four different parents
    on = np.array([fires[child & (family == owner[j]), j].sum() for j in range(4)])
    off = np.array([fires[family != owner[j], j].sum() for j in range(4)])
    assert (on >= 7).all() and (off <= 2).all(), (on, off)
    best = parent_cos.max(0)
    others = parent_cos[np.arange(4)[:, None] != owner[None, :]]
    assert (best > 0.6).all() and np.abs(others).max() < 0.4, parent_cos
    g = beyond["glued"]
    assert g["by_meta_child_own_min"] == pytest.approx(own.min(), abs=1e-6)
    assert (g["by_meta_child_parent_min"], g["by_meta_child_parent_max"]) == pytest.approx(
        (par.min(), par.max()), abs=1e-6
    )
    assert (g["by_meta_on_family_min"], g["by_meta_off_family_max"]) == (on.min(), off.max())
    assert g["by_meta_parent_cos_min"] == pytest.approx(best.min(), abs=1e-6)
    assert g["by_meta_other_cos_max"] == pytest.approx(np.abs(others).max(), abs=1e-6)
