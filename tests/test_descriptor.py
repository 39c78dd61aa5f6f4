"""Every registered descriptor loads its real weights and gives unit vectors that survive edits;
the ImageNet weights behind text search give real photos a sensible top-5."""

from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_sample_images
from torchvision.models import ResNet50_Weights

from vcopy.errors import VcopyError
from vcopy.features import DESCRIPTORS, create_descriptor
from vcopy.video import sha256_file
from vcopy.weights import shipped


def _resize(image: np.ndarray, size: int = 224) -> np.ndarray:
    x = torch.from_numpy(image.copy()).permute(2, 0, 1)[None].float()
    x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True)
    return x[0].permute(1, 2, 0).round().clamp(0, 255).byte().numpy()


def test_imagenet_top5_on_real_photos() -> None:
    categories = ResNet50_Weights.IMAGENET1K_V2.meta["categories"]
    descriptor = create_descriptor("efficientnet_lite0")
    china, flower = (_resize(i) for i in load_sample_images().images)
    probs = descriptor.imagenet_probabilities(np.stack([china, flower]))
    top5 = [{categories[j] for j in np.argsort(-p)[:5]} for p in probs]
    assert top5[0] & {"palace", "bell cote", "church", "castle", "monastery", "boathouse", "dome"}
    assert "daisy" in top5[1]


@pytest.mark.parametrize("name", sorted(DESCRIPTORS))
def test_vectors_are_normalised_and_robust(name: str) -> None:
    descriptor = create_descriptor(name)
    assert descriptor.name.startswith(f"{name}/") and len(descriptor.background) > 100
    assert create_descriptor(descriptor.name).name == descriptor.name  # rebuilt from a library's record
    china, flower = (_resize(i, descriptor.frame_size) for i in load_sample_images().images)
    brighter = np.clip(china.astype(int) + 30, 0, 255).astype(np.uint8)
    v = descriptor.encode(np.stack([china, brighter, flower]))
    assert v.shape == (3, descriptor.dim) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2
    with pytest.raises(VcopyError, match="not installed"):
        create_descriptor(f"{name}/other-weights")


def test_learned_whitening_suppresses_what_copies_change(tmp_path) -> None:
    from vcopy.whitening import LearnedWhitening, fit_learned_whitening, l2_normalize

    rng = np.random.default_rng(0)
    frames = l2_normalize(rng.normal(size=(400, 16)))
    edit = np.zeros(16, dtype=np.float32)
    edit[0] = 1.0  # every copy moves along one direction, by more than frames differ
    copies = l2_normalize(frames + 2.0 * edit * rng.normal(size=(400, 1)))
    whitening = fit_learned_whitening(copies[:300], frames[:300], frames[:300], dim=8)
    whitening.save(tmp_path / "w.npz")
    loaded = LearnedWhitening.load(tmp_path / "w.npz")
    assert loaded.dim == 8 and loaded.provenance["pairs"] == 300
    a, b = loaded.apply(copies[300:]), loaded.apply(frames[300:])
    raw_pair = np.mean(np.sum(copies[300:] * frames[300:], axis=1))
    assert np.mean(np.sum(a * b, axis=1)) > max(raw_pair, 0.9)  # held-out copies now match


def test_layout_says_where_things_are() -> None:
    from vcopy.features import LAYOUT_DIMS, LAYOUT_GRID

    descriptor = create_descriptor("efficientnet_lite0")
    flower = _resize(load_sample_images().images[1])[::2, ::2]  # 112 x 112
    empty = np.full((224, 224, 3), 128, dtype=np.uint8)
    left, right = empty.copy(), empty.copy()
    left[56:168, :112], right[56:168, 112:] = flower, flower
    vectors, text = descriptor.encode_with_text(np.stack([empty, left, right]))
    assert text is not None and text.layouts.shape == (3, LAYOUT_GRID**2 * LAYOUT_DIMS)
    cells = text.layouts.reshape(3, LAYOUT_GRID, LAYOUT_GRID, LAYOUT_DIMS)
    change = np.linalg.norm(cells[1:] - cells[0], axis=-1).mean(axis=1)  # [left/right, grid column]
    assert change[0, 0] > 1.5 * change[0, 2] and change[1, 2] > 1.5 * change[1, 0]
    assert vectors[1] @ vectors[2] > 0.9  # the global vectors hardly tell the two apart


def test_query_views_find_the_picture_inside_borders() -> None:
    from vcopy.features.views import VIEWS, trim_box, view_frames

    flower = _resize(load_sample_images().images[1], 288)
    boxed = np.zeros_like(flower)
    inner = _resize(flower, 200)
    boxed[44:244, 44:244] = inner  # padded all round with black
    assert trim_box(boxed) == (44, 244, 44, 244)
    assert trim_box(flower) == (0, 288, 0, 288)  # a picture with no border is not cut
    flat = np.full((288, 288, 3), 90, dtype=np.uint8)
    assert trim_box(flat) == (0, 288, 0, 288)  # nor is a flat one
    frames = np.stack([flower, boxed])
    views = view_frames(frames, ("flip", "trim", "centre", "halves"))
    assert len(views) == 1 + 1 + 1 + 4 and all(v.shape == frames.shape for v in views)
    np.testing.assert_array_equal(views[0][0], flower[:, ::-1])
    descriptor = create_descriptor()
    trimmed, original = descriptor.encode(views[1][1:]), descriptor.encode(flower[None])
    assert float(trimmed[0] @ original[0]) > float(descriptor.encode(boxed[None])[0] @ original[0])
    with pytest.raises(ValueError, match="unknown view"):
        view_frames(frames, ("zoom",))
    assert set(VIEWS) == {"flip", "trim", "centre", "halves"}


@pytest.mark.slow
def test_onnx_networks_compute_what_the_pretrained_wheels_do() -> None:
    """The exported EfficientNet-Lite0 and MiniLM give the torch networks' outputs (the text
    encoder's weights are stored as float16, hence its looser bound)."""
    from sentence_transformers import SentenceTransformer

    from vcopy.features.efficientnet import OUTPUTS, EfficientNetDescriptor
    from vcopy.text.encoder import TextEncoder
    from vcopy.train.export import EfficientNetFeatures, minilm_path

    china, flower = load_sample_images().images
    frames = np.stack([_resize(china, 288), _resize(flower, 288)])  # resized to 224 inside the graph
    with torch.no_grad():
        expected = EfficientNetFeatures().eval()(torch.from_numpy(frames))
    got = EfficientNetDescriptor(whitening=None)._run(frames, list(OUTPUTS))
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_allclose(a, b.numpy(), atol=1e-5)

    texts = ["a cat looking at the camera", "", "two people talking in a kitchen " * 60]  # the last is cut
    reference = SentenceTransformer(str(minilm_path()), device="cpu", local_files_only=True)
    expected_text = reference.encode(texts, normalize_embeddings=True)
    encoder = TextEncoder()
    np.testing.assert_allclose(encoder.encode(texts), expected_text, atol=5e-4)
    tokens = reference.encode(texts, output_value="token_embeddings")
    for mine, theirs in zip(encoder.tokens(texts), tokens, strict=True):
        np.testing.assert_allclose(mine.embeddings, theirs.numpy(), atol=5e-3)


def test_shipped_networks_are_the_files_weights_readme_names() -> None:
    readme = (Path(__file__).resolve().parent.parent / "weights" / "README.md").read_text()
    for name in ("efficientnet_lite0.onnx", "minilm.onnx", "minilm-tokenizer.json", "imagenet-classes.npz"):
        assert sha256_file(shipped(name)) in readme, name
