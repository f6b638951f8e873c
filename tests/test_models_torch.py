"""The PyTorch model zoo: registry-wide invariants plus the shared layers, hand-checked."""

from __future__ import annotations

import math
import sys
import types

import pytest
import torch
from torch import nn

from islr.errors import ConfigError, ModelError  # noqa: E402
from islr.models import registry  # noqa: E402
from islr.models.torch import get_dropout, set_dropout  # noqa: E402
from islr.models.torch.cnn_transfer import CVTransferLearningModel  # noqa: E402
from islr.models.torch.conv1d_transformer import Conv1DBlock, Conv1DTransformer  # noqa: E402
from islr.models.torch.ensemble import TransformerEnsemble  # noqa: E402
from islr.models.torch.hybrid import HybridModel  # noqa: E402
from islr.models.torch.layers import (  # noqa: E402
    LateDropout,
    MaskedBatchNorm1d,
    StochasticDrop,
    last_valid_index,
    masked_mean,
    safe_mask,
    sinusoidal_positions,
)
from islr.models.torch.lstm import LSTMClassifier, LSTMPredictor  # noqa: E402
from islr.models.torch.transformer import TransformerSequenceClassifier  # noqa: E402
from islr.models.torch.yet_another_transformer import (  # noqa: E402
    TransformerBlock,
    YetAnotherTransformerClassifier,
)

torch.set_num_threads(1)

ALL_NAMES = [
    "lstm",
    "transformer",
    "yet_another_transformer",
    "hybrid",
    "transformer_ensemble",
    "hybrid_ensemble",
    "yet_another_ensemble",
    "cnn_transfer",
    "conv1d_transformer",
]
NAMES = registry.list_models("torch")
INPUT_DIM = 12  # 6 landmarks x 2 coords: tiny, and a multiple of cnn_transfer's coords
NUM_CLASSES = 5

# Trainable parameters of every shipped config, 250 classes, input 192 (seed96 x, y) and 708 for
# conv1d_transformer. The Keras twins must report the same numbers.
EXPECTED_TRAINABLE = {
    "lstm": 328_186,
    "transformer": 1_124_602,
    "yet_another_transformer": 971_770,
    "hybrid": 518_522,
    "transformer_ensemble": 752_110,
    "hybrid_ensemble": 538_452,
    "yet_another_ensemble": 827_124,
    "cnn_transfer": 339_322,
    "conv1d_transformer": 1_830_040,
}


def trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def build(name: str, seed: int = 0, **params) -> nn.Module:
    torch.manual_seed(seed)
    return registry.create_model(name, "torch", INPUT_DIM, NUM_CLASSES, params)


def padded_batch(
    lengths: list[int], total: int, seed: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random frames up to each length, zeros after (mask False), like the data pipeline."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(len(lengths), total, INPUT_DIM, generator=gen)
    mask = torch.arange(total)[None, :] < torch.tensor(lengths)[:, None]
    return x * mask[..., None], mask


def test_registry_lists_all_torch_models():
    assert set(ALL_NAMES) <= set(NAMES)
    assert len(NAMES) == len(ALL_NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_forward_shape_and_finite(name):
    model = build(name)
    x, mask = padded_batch([9, 5, 1], 9)
    for train in (True, False):
        model.train(train)
        logits = model(x, mask)
        assert logits.shape == (3, NUM_CLASSES)
        assert logits.dtype == torch.float32
        assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", NAMES)
def test_every_trainable_parameter_gets_a_gradient(name):
    model = build(name).train()
    x, mask = padded_batch([8, 6, 4, 8], 8)
    torch.manual_seed(0)
    loss = nn.functional.cross_entropy(model(x, mask), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    for pname, p in model.named_parameters():
        if not p.requires_grad:
            assert p.grad is None, pname
            continue
        assert p.grad is not None, f"{pname} got no gradient"
        assert torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, f"{pname} got an all-zero gradient"


@pytest.mark.parametrize("name", NAMES)
def test_a_few_adam_steps_lower_the_loss(name):
    model = build(name).train()
    x, mask = padded_batch([8, 8, 6, 5], 8, seed=3)
    y = torch.tensor([0, 1, 2, 3])
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)

    def loss_now() -> torch.Tensor:
        torch.manual_seed(42)  # the same dropout masks every time: a fixed function to minimise
        return nn.functional.cross_entropy(model(x, mask), y)

    first = loss_now()
    for _ in range(6):
        opt.zero_grad()
        loss = loss_now()
        loss.backward()
        opt.step()
    with torch.no_grad():
        last = loss_now()
    assert last.item() < first.item() - 0.05, (first.item(), last.item())


@pytest.mark.parametrize("name", NAMES)
def test_padding_invariance_in_eval_mode(name):
    model = build(name).eval()
    x, mask = padded_batch([8], 8, seed=5)
    x_pad = torch.cat([x, torch.zeros(1, 7, INPUT_DIM)], dim=1)
    mask_pad = torch.cat([mask, torch.zeros(1, 7, dtype=torch.bool)], dim=1)
    with torch.no_grad():
        a = model(x, mask)
        b = model(x_pad, mask_pad)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", NAMES)
def test_batch_independence_in_eval_mode(name):
    model = build(name).eval()
    lengths = [9, 5, 2]
    x, mask = padded_batch(lengths, 9, seed=7)
    with torch.no_grad():
        together = model(x, mask)
        for i, n in enumerate(lengths):
            alone = model(x[i : i + 1, :n], mask[i : i + 1, :n])
            torch.testing.assert_close(together[i : i + 1], alone, atol=1e-5, rtol=0)


def test_trainable_parameter_counts_of_shipped_configs():
    for name, expected in EXPECTED_TRAINABLE.items():
        input_dim = 708 if name == "conv1d_transformer" else 192
        model = registry.create_model(name, "torch", input_dim, 250)
        assert trainable(model) == expected, name


def test_conv1d_transformer_reference_breakdown():
    model = registry.create_model("conv1d_transformer", "torch", 708, 250)
    assert isinstance(model, Conv1DTransformer)
    assert trainable(model) == 1_830_040
    assert trainable(model.stem) == 135_936
    assert trainable(model.stem_norm) == 384
    convs = [b for b in model.blocks if isinstance(b, Conv1DBlock)]
    attns = [b for b in model.blocks if isinstance(b, TransformerBlock)]
    assert [trainable(b) for b in convs] == [155_333] * 6
    assert [trainable(b) for b in attns] == [295_680] * 2
    assert trainable(model.top) == 74_112
    assert trainable(model.classifier) == 96_250
    assert model.stem_norm.momentum == pytest.approx(0.05)  # Keras 0.95
    # order: 3 conv blocks then a transformer block, twice
    kinds = [type(b).__name__ for b in model.blocks]
    assert kinds == (["Conv1DBlock"] * 3 + ["TransformerBlock"]) * 2


@pytest.mark.parametrize(
    ("cls", "name"),
    [
        (LSTMClassifier, "lstm"),
        (TransformerSequenceClassifier, "transformer"),
        (YetAnotherTransformerClassifier, "yet_another_transformer"),
        (HybridModel, "hybrid"),
        (CVTransferLearningModel, "cnn_transfer"),
        (Conv1DTransformer, "conv1d_transformer"),
    ],
)
def test_class_defaults_equal_the_shipped_yaml(cls, name):
    import inspect

    sig = inspect.signature(cls.__init__)
    yaml_params = registry.default_params(name)
    defaults = {
        k: (list(v.default) if isinstance(v.default, tuple) else v.default)
        for k, v in sig.parameters.items()
        if k not in ("self", "input_dim", "num_classes")
    }
    assert defaults == yaml_params


def test_unknown_parameter_is_a_config_error():
    with pytest.raises(ConfigError, match="lstm"):
        registry.create_model("lstm", "torch", 4, 3, {"hiden_dim": 3})


# --- dynamic dropout helpers ------------------------------------------------------------------


def test_set_and_get_dropout_touch_only_nn_dropout():
    model = build("conv1d_transformer")
    rates = get_dropout(model)
    # one attention dropout per transformer block (2 stages), late dropout excluded
    assert rates == [0.2, 0.2]
    assert set_dropout(model, 0.35) == 2
    assert get_dropout(model) == [0.35, 0.35]
    assert model.late_dropout.rate == 0.8
    drops = [m for m in model.modules() if isinstance(m, StochasticDrop)]
    assert drops and all(d.rate == 0.2 for d in drops)
    with pytest.raises(ConfigError):
        set_dropout(model, 1.5)


def test_set_dropout_changes_the_computation():
    model = build("lstm", num_layers=3, dropout=0.5)
    assert get_dropout(model) == [0.5, 0.5, 0.5]  # two between layers, one before the head
    x, mask = padded_batch([6, 4], 6)
    model.eval()
    with torch.no_grad():
        reference = model(x, mask)
        model.train()
        assert not torch.allclose(model(x, mask), reference)
        set_dropout(model, 0.0)
        torch.testing.assert_close(model(x, mask), reference)


def test_get_dropout_of_a_model_without_dropout_is_empty():
    assert get_dropout(nn.Sequential(nn.Linear(2, 2), LateDropout(0.5))) == []


# --- shared layers ----------------------------------------------------------------------------


def test_masked_mean_by_hand():
    x = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    mask = torch.tensor([[True, True, False]])
    torch.testing.assert_close(masked_mean(x, mask), torch.tensor([[2.0, 3.0]]))
    # an empty row gives zeros, not NaN
    torch.testing.assert_close(
        masked_mean(x, torch.zeros(1, 3, dtype=torch.bool)), torch.zeros(1, 2)
    )


def test_safe_mask_and_last_valid_index():
    mask = torch.tensor([[True, True, False], [False, False, False], [True, False, True]])
    assert safe_mask(mask).tolist() == [
        [True, True, False],
        [True, False, False],
        [True, False, True],
    ]
    assert last_valid_index(mask).tolist() == [1, 0, 2]


def test_sinusoidal_positions_by_hand():
    table = sinusoidal_positions(3, 4)
    assert table.shape == (3, 4)
    torch.testing.assert_close(table[0], torch.tensor([0.0, 1.0, 0.0, 1.0]))
    expected = [math.sin(2), math.cos(2), math.sin(2 / 100), math.cos(2 / 100)]
    torch.testing.assert_close(table[2], torch.tensor(expected), atol=1e-6, rtol=0)


def test_stochastic_drop_drops_whole_samples():
    drop = StochasticDrop(0.5)
    x = torch.ones(64, 3, 2)
    torch.manual_seed(0)
    out = drop.train()(x)
    per_sample = out.reshape(64, -1)
    assert set(per_sample.unique().tolist()) == {0.0, 2.0}
    assert (per_sample == per_sample[:, :1]).all()  # the same for every frame of a sample
    assert torch.equal(drop.eval()(x), x)
    assert not isinstance(drop, nn.Dropout)


def test_late_dropout_starts_after_its_step():
    late = LateDropout(0.5, start_step=2).train()
    x = torch.ones(4, 50)
    assert torch.equal(late(x), x)
    assert torch.equal(late(x), x)
    torch.manual_seed(0)
    third = late(x)
    assert set(third.unique().tolist()) == {0.0, 2.0}
    assert int(late.step) == 3
    assert "step" in late.state_dict() and not list(late.parameters())
    assert torch.equal(late.eval()(x), x)
    assert int(late.step) == 3  # eval does not count


def test_masked_batchnorm_uses_real_frames_only():
    torch.manual_seed(0)
    bn = MaskedBatchNorm1d(3, momentum=0.1).train()
    x, mask = (
        torch.randn(2, 5, 3),
        torch.tensor([[1, 1, 1, 0, 0], [1, 1, 0, 0, 0]], dtype=torch.bool),
    )
    out = bn(x, mask)
    real = x[mask]  # (5, 3)
    expected = (real - real.mean(0)) / torch.sqrt(real.var(0, unbiased=False) + bn.eps)
    torch.testing.assert_close(out[mask], expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(bn.running_mean, 0.1 * real.mean(0))
    torch.testing.assert_close(bn.running_var, 0.9 + 0.1 * real.var(0, unbiased=True))
    # padded values do not change the real frames' output
    x2 = x.clone()
    x2[~mask] = 1000.0
    torch.testing.assert_close(
        MaskedBatchNorm1d(3).train()(x2, mask)[mask], out[mask], atol=1e-5, rtol=0
    )


def test_masked_batchnorm_equals_batchnorm1d_without_padding():
    torch.manual_seed(0)
    ours, ref = MaskedBatchNorm1d(4, momentum=0.2), nn.BatchNorm1d(4, momentum=0.2)
    x = torch.randn(3, 6, 4)
    torch.testing.assert_close(
        ours(x, torch.ones(3, 6, dtype=torch.bool)), ref(x.transpose(1, 2)).transpose(1, 2)
    )
    torch.testing.assert_close(ours.running_var, ref.running_var)
    ours.eval()
    ref.eval()
    torch.testing.assert_close(ours(x), ref(x.transpose(1, 2)).transpose(1, 2))


# --- family specifics -------------------------------------------------------------------------


def test_lstm_hidden_bias_is_frozen_at_zero_and_paths_agree():
    model = build("lstm").eval()
    layers = model.encoder.layers
    for layer in layers:
        assert not layer.bias_hh_l0.requires_grad
        assert torch.equal(layer.bias_hh_l0, torch.zeros_like(layer.bias_hh_l0))
    # Keras LSTM count: 4H(F+H) + 4H per layer
    h = 128
    assert trainable(layers[0]) == 4 * h * (INPUT_DIM + h) + 4 * h
    x, mask = padded_batch([7, 3, 1], 7)
    with torch.no_grad():
        packed = model(x, mask)
        model.encoder.use_packing = False  # the tracing/export path
        padded = model(x, mask)
    torch.testing.assert_close(packed, padded, atol=1e-6, rtol=0)


def test_predictor_gives_probabilities_and_top_class():
    model = build("lstm")
    predictor = LSTMPredictor(model)
    predictor.train()
    assert not model.training
    x, mask = padded_batch([4, 2], 4)
    probs = predictor(x, mask)
    torch.testing.assert_close(probs.sum(-1), torch.ones(2))
    index, confidence = predictor.predict(x, mask)
    assert index.tolist() == model(x, mask).argmax(-1).tolist()
    torch.testing.assert_close(confidence, probs.max(-1).values)


def test_ensemble_averages_member_logits_with_member_defaults():
    model = build("transformer_ensemble").eval()
    assert isinstance(model, TransformerEnsemble)
    assert [m.transformer.d_model for m in model.models] == [128, 96, 64]
    # dropout/norm_first come from configs/models/transformer.yaml
    assert get_dropout(model.models[0])[-1] == 0.1
    x, mask = padded_batch([5, 3], 5)
    with torch.no_grad():
        mean = torch.stack([m(x, mask) for m in model.models]).mean(0)
        torch.testing.assert_close(model(x, mask), mean)


@pytest.mark.parametrize("members", [[], [{"params": {}}], [{"name": "lstm", "extra": 1}]])
def test_bad_ensemble_members_are_config_errors(members):
    with pytest.raises(ConfigError):
        registry.create_model("transformer_ensemble", "torch", 4, 3, {"members": members})


def test_yet_another_causal_attention_ignores_later_frames():
    model = build("yet_another_transformer", causal=True).eval()
    blocks = model.transformer.blocks
    x, mask = padded_batch([6], 6, seed=2)
    h = torch.randn(1, 6, 192)
    with torch.no_grad():
        out = blocks[0].attn(h, mask)
        h2 = h.clone()
        h2[:, 4:] = 5.0  # change only the last two frames
        out2 = blocks[0].attn(h2, mask)
    torch.testing.assert_close(out[:, :4], out2[:, :4])
    assert not torch.allclose(out[:, 4:], out2[:, 4:])


def test_cnn_transfer_image_layout_and_errors(monkeypatch):
    model = build("cnn_transfer")
    x = torch.arange(2 * 3 * INPUT_DIM, dtype=torch.float32).reshape(2, 3, INPUT_DIM)
    image = model.to_image(x)
    assert image.shape == (2, 2, 3, INPUT_DIM // 2)
    # feature l * coords + c lands at channel c, landmark l
    assert image[1, 1, 2, 4] == x[1, 2, 4 * 2 + 1]
    with pytest.raises(ConfigError, match="multiple of coords"):
        registry.create_model("cnn_transfer", "torch", 7, 3)
    with pytest.raises(ConfigError, match="unknown arch"):
        registry.create_model("cnn_transfer", "torch", 8, 3, {"arch": "vgg"})
    for package in ("timm", "torchvision"):
        monkeypatch.setitem(sys.modules, package, None)  # behave as if not installed
        monkeypatch.setattr(
            "islr.models.torch.cnn_transfer.importlib.util.find_spec",
            lambda name: None,
        )
        with pytest.raises(ConfigError, match=f"needs the {package} package"):
            registry.create_model("cnn_transfer", "torch", 8, 3, {"arch": f"{package}:resnet18"})


def test_cnn_transfer_with_an_installed_timm(monkeypatch):
    class TinyNet(nn.Module):
        def __init__(self, in_chans):
            super().__init__()
            self.conv = nn.Conv2d(in_chans, 6, 3, padding=1)
            self.num_features = 6

        def forward(self, image):
            return self.conv(image).mean(dim=(2, 3))

    calls = {}

    def create_model(name, pretrained, in_chans, num_classes):
        calls.update(name=name, pretrained=pretrained, in_chans=in_chans, num_classes=num_classes)
        return TinyNet(in_chans)

    fake = types.ModuleType("timm")
    fake.create_model = create_model
    monkeypatch.setitem(sys.modules, "timm", fake)
    monkeypatch.setattr(
        "islr.models.torch.cnn_transfer.importlib.util.find_spec", lambda name: object()
    )
    model = registry.create_model(
        "cnn_transfer", "torch", INPUT_DIM, NUM_CLASSES, {"arch": "timm:tiny"}
    )
    assert calls == {"name": "tiny", "pretrained": False, "in_chans": 2, "num_classes": 0}
    x, mask = padded_batch([4, 2], 4)
    assert model(x, mask).shape == (2, NUM_CLASSES)


def test_cnn_transfer_loads_only_local_weights(tmp_path):
    source = build("cnn_transfer", seed=1)
    path = tmp_path / "backbone.pt"
    torch.save(source.backbone.state_dict(), path)
    target = build("cnn_transfer", seed=2, pretrained_weights=str(path))
    for (name, a), b in zip(
        source.backbone.state_dict().items(), target.backbone.state_dict().values()
    ):
        assert torch.equal(a, b), name
    with pytest.raises(ModelError, match="not found"):
        build("cnn_transfer", pretrained_weights=str(tmp_path / "missing.pt"))
    torch.save({"unrelated": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(ModelError, match="no tensor matches"):
        build("cnn_transfer", pretrained_weights=str(tmp_path / "other.pt"))
