"""toy_lib.sae's Matryoshka SAE: the nested-prefix loss on a hand-computed example, its settings
checked (bad input named), batched = separate runs, a result that survives `select` and the cache."""

from __future__ import annotations

import pytest
import torch

from toy_lib import SAEConfig, cached_train_sae, train_sae
from toy_lib.sae import _ARCHITECTURES
from toy_lib.sae._data import instance_seeds

# d_in 2, d_sae 3, one instance; latent 0 is the first prefix (width 1), all three the second.
W_ENC = torch.tensor([[[1.0, 0.0, 0.5], [0.0, 1.0, 0.5]]])
W_DEC = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])
X = torch.tensor([[[2.0, 0.0], [1.0, 3.0]]])  # z = (2, 0, 1) and (1, 3, 2)


def _params():
    return {
        "W_enc": W_ENC.clone(),
        "W_dec": W_DEC.clone(),
        "b_enc": torch.zeros(1, 3),
        "b_dec": torch.zeros(1, 2),
        "threshold": torch.full((1,), -1.0),
    }


def _arch(**kw):
    cfg = SAEConfig(2, 3, architecture="matryoshka", k=1, prefix_widths=(1, 3), **kw)
    return _ARCHITECTURES["matryoshka"](cfg)


def test_forward_and_nested_loss_by_hand():
    out = _arch(prefix_weights=(1.0, 0.5)).loss(_params(), X)
    # BatchTopK keeps k × batch = 2 activations of the batch: 3 and 2 (both of the second input),
    # and 2 (tied with the second largest) of the first
    torch.testing.assert_close(out.f, torch.tensor([[[2.0, 0.0, 0.0], [0.0, 3.0, 2.0]]]))
    # the whole dictionary: x̂ = (2, 0) and 3 (0, 1) + 2 (1, 1) = (2, 5): errors 0 and 1 + 4
    torch.testing.assert_close(out.x_hat, torch.tensor([[[2.0, 0.0], [2.0, 5.0]]]))
    torch.testing.assert_close(out.parts["mse"], torch.tensor([2.5]))
    # the first prefix (latent 0 alone): x̂ = (2, 0) and (0, 0): errors 0 and 1 + 9, mean 5
    torch.testing.assert_close(out.parts["nested"], torch.tensor([5.0 + 0.5 * 2.5]))
    torch.testing.assert_close(out.loss, torch.tensor([6.25]))


def test_equal_weights_by_default_and_one_prefix_is_batchtopk():
    out = _arch().loss(_params(), X)
    torch.testing.assert_close(out.loss, torch.tensor([5.0 + 2.5]))
    one = _ARCHITECTURES["matryoshka"](SAEConfig(2, 3, architecture="matryoshka", k=1, prefix_widths=[3]))
    plain = _ARCHITECTURES["batchtopk"](SAEConfig(2, 3, architecture="batchtopk", k=1))
    torch.testing.assert_close(one.loss(_params(), X).loss, plain.loss(_params(), X).loss)


def test_the_first_prefix_gets_the_gradient_of_its_own_error():
    p = {name: v.requires_grad_(True) if name != "threshold" else v for name, v in _params().items()}
    _arch(prefix_weights=(1.0, 0.0)).loss(p, X).loss.sum().backward()
    # only latent 0's row is used by the first prefix: the others get no gradient from it
    assert p["W_dec"].grad[0, 1:].abs().sum() == 0
    assert p["W_dec"].grad[0, 0].abs().sum() == 0  # the first input is reconstructed exactly


def close(a, b, msg=""):
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=msg or None)


def test_batched_equals_separate_runs():
    data = torch.randn(400, 4, generator=torch.Generator().manual_seed(0))
    cfg = SAEConfig(4, 6, n_instances=3, architecture="matryoshka", k=[1, 2, 2], prefix_widths=(2, 4, 6))
    kw = dict(steps=25, batch_size=32, device="cpu", eval_batch_size=64, progress=False)
    both = train_sae(cfg, data, seed=5, **kw)
    for i, s in enumerate(instance_seeds(5, 3)):
        alone = train_sae(
            SAEConfig(4, 6, architecture="matryoshka", k=cfg.k[i], prefix_widths=(2, 4, 6)),
            data,
            seed=[s],
            **kw,
        )
        # the autograd path: equal up to float rounding (batched matrix products sum in another order)
        for name in ("W_enc", "W_dec", "b_enc", "b_dec"):
            close(getattr(alone, name)[0], getattr(both, name)[i], msg=f"{i} {name}")
        close(alone.extra["threshold"][0], both.extra["threshold"][i])
        close(alone.loss_history[:, 0], both.loss_history[:, i])
    part = both.select([2])
    assert part.config.prefix_widths == (2, 4, 6) and part.config.k == (2,)
    torch.testing.assert_close(part.W_dec[0], both.W_dec[2])


def test_the_cache_keeps_the_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("TOY_LIB_CACHE_DIR", str(tmp_path))
    data = torch.randn(200, 3, generator=torch.Generator().manual_seed(1))
    cfg = SAEConfig(3, 4, architecture="matryoshka", k=1, prefix_widths=(1, 4), prefix_weights=(2.0, 1.0))
    kw = dict(steps=5, batch_size=16, device="cpu", eval_batch_size=32, progress=False)
    first = cached_train_sae(cfg, data, **kw)
    again = cached_train_sae(cfg, data, **kw)
    assert torch.equal(first.W_dec, again.W_dec)
    assert again.config.prefix_widths == (1, 4) and again.config.prefix_weights == (2.0, 1.0)
    other = cached_train_sae(
        SAEConfig(3, 4, architecture="matryoshka", k=1, prefix_widths=(2, 4)), data, **kw
    )
    assert not torch.equal(first.W_dec, other.W_dec)
    encoded = first.encode(data[:8])
    assert encoded.shape == (1, 8, 4)


@pytest.mark.parametrize(
    "kw, name, words",
    [
        (dict(), "prefix_widths", "increasing strictly"),
        (dict(prefix_widths=(2, 2, 6)), "prefix_widths", "not strictly increasing"),
        (dict(prefix_widths=(4, 2, 6)), "prefix_widths", "not strictly increasing"),
        (dict(prefix_widths=(2, 4)), "prefix_widths", "the last width is 4"),
        (dict(prefix_widths=(0, 6)), "prefix_widths", "from at least 1"),
        (dict(prefix_widths=(2, 7)), "prefix_widths", "d_sae = 6"),
        (dict(prefix_widths=()), "prefix_widths", "an empty sequence"),
        (dict(prefix_widths=6), "prefix_widths", "int"),
        (dict(prefix_widths="26"), "prefix_widths", "str"),
        (dict(prefix_widths=(2.5, 6)), "prefix_widths", "increasing"),
        (dict(prefix_widths=(2, 6), prefix_weights=(1.0,)), "prefix_weights", "1 numbers"),
        (dict(prefix_widths=(2, 6), prefix_weights=(1.0, -1.0)), "prefix_weights", "non-negative"),
        (dict(prefix_widths=(2, 6), prefix_weights=(1.0, float("nan"))), "prefix_weights", "finite"),
        (dict(prefix_widths=(2, 6), prefix_weights=(0.0, 0.0)), "prefix_weights", "all zero"),
        (dict(prefix_widths=(2, 6), prefix_weights=torch.tensor(1.0)), "prefix_weights", "a single number"),
    ],
)
def test_bad_settings_are_named(kw, name, words):
    with pytest.raises(ValueError, match=name) as err:
        SAEConfig(4, 6, architecture="matryoshka", k=2, **kw)
    assert words in str(err.value)


def test_matryoshka_settings_belong_to_matryoshka_only_and_k_is_required():
    with pytest.raises(ValueError, match="prefix_widths.*'matryoshka'"):
        SAEConfig(4, 6, architecture="batchtopk", k=2, prefix_widths=(2, 6))
    with pytest.raises(ValueError, match="prefix_weights"):
        SAEConfig(4, 6, architecture="relu", prefix_weights=(1.0,))
    with pytest.raises(ValueError, match="k=None"):
        SAEConfig(4, 6, architecture="matryoshka", prefix_widths=(2, 6))


def test_bad_data_is_refused_as_for_the_other_architectures():
    cfg = SAEConfig(4, 6, architecture="matryoshka", k=2, prefix_widths=(2, 6))
    with pytest.raises(ValueError, match="data"):
        train_sae(cfg, torch.randn(10, 3), steps=2, batch_size=4, device="cpu")
    with pytest.raises(ValueError, match="data"):
        train_sae(cfg, torch.full((10, 4), float("nan")), steps=2, batch_size=4, device="cpu")
