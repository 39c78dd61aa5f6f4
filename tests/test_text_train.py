"""`vcopy train text`: caption formats, the losses on hand-made matrices, and a tiny training run
end to end (index, train, resume, search with the trained model)."""

from __future__ import annotations

import json
import math
import shutil
import sqlite3
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_vcopy

from vcopy.errors import VcopyError
from vcopy.features import LAYOUT_DIMS, LAYOUT_GRID
from vcopy.runtime import onnx_session
from vcopy.synth.captioned import fine_grained_scenes, make_fine_grained_set
from vcopy.text.captions import Caption, read_captions, resolve_videos
from vcopy.text.model import ModelConfig, VideoTextModel, layout_motion, save_model, write_onnx
from vcopy.train.text import prepare_data, train_text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
import text_losses as losses
from text_losses import inverse_document_frequency, word_weights


def test_caption_formats_people_have(tmp_path: Path) -> None:
    msrvtt = tmp_path / "train_val_videodatainfo.json"
    msrvtt.write_text(
        json.dumps(
            {
                "videos": [{"video_id": "video0"}, {"video_id": "video1"}],
                "sentences": [
                    {"video_id": "video0", "caption": "a cat plays", "sen_id": 0},
                    {"video_id": "video0", "caption": "a kitten is playing", "sen_id": 1},
                    {"video_id": "video1", "caption": "a bus drives", "sen_id": 2},
                ],
            }
        )
    )
    webvid = tmp_path / "results_2M_val.csv"
    webvid.write_text(
        'videoid,contentUrl,duration,page_dir,name\n31353427,http://x,PT00H00M15S,d,"Aerial, a lake"\n'
    )
    jsonl = tmp_path / "captions.jsonl"
    jsonl.write_text(
        '{"video": "clips/a.mp4", "caption": "one red cat"}\n\n{"video": "b", "caption": "two buses"}\n'
    )
    assert read_captions(msrvtt) == [
        Caption("video0", "a cat plays"),
        Caption("video0", "a kitten is playing"),
        Caption("video1", "a bus drives"),
    ]
    assert read_captions(webvid) == [Caption("31353427", "Aerial, a lake")]
    assert read_captions(jsonl) == [Caption("clips/a.mp4", "one red cat"), Caption("b", "two buses")]

    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "a.mp4").write_bytes(b"")
    (tmp_path / "b.webm").write_bytes(b"")
    found, missing = resolve_videos([*read_captions(jsonl), Caption("nowhere", "x")], tmp_path)
    assert found == {"clips/a.mp4": tmp_path / "clips" / "a.mp4", "b": tmp_path / "b.webm"}
    assert missing == ["nowhere"]

    for name, text, reason in [
        ("bad.csv", "file,title\nx,y\n", "no caption column"),
        ("bad.json", '{"videos": []}', "not MSR-VTT JSON"),
        ("bad.jsonl", '{"video": "x"}\n', "bad.jsonl:1"),
        ("bad.txt", "x", "unknown caption format"),
        ("empty.jsonl", "\n", "no captions"),
    ]:
        (tmp_path / name).write_text(text)
        with pytest.raises(VcopyError, match=reason):
            read_captions(tmp_path / name)


def test_negnce_hard_negatives_and_auxiliary_term() -> None:
    s = torch.tensor([[0.9, 0.2, 0.95], [0.1, 0.5, 0.0], [0.3, 0.6, 0.4]])
    hard = losses.hard_negatives(s)
    # (0,2): 0.95 > S_00; (2,1): 0.6 > S_22; (1,0) 0.1 is below S_11 and S_00; (2,0): 0.3 < 0.4 and < 0.9
    assert hard.tolist() == [[False, False, True], [False, False, False], [False, True, False]]
    logits = s * 20
    term = losses.neg_nce(s, logits, r2=0.5)
    p_t2v = logits.softmax(1)
    p_v2t = logits.T.softmax(1)
    expected = -torch.log(1 - torch.stack([p_t2v[0, 2], p_t2v[2, 1], p_v2t[2, 0], p_v2t[1, 2]]))
    assert float(term) == pytest.approx(0.5 * float(expected.mean()), rel=1e-5)
    easy = torch.eye(3) * 0.9
    assert float(losses.neg_nce(easy, easy * 20)) == 0.0


def test_tpm_masks_top_weights_until_their_mass_reaches_the_limit() -> None:
    w = torch.tensor([[0.1, 0.5, 0.2, 0.2, 0.0], [0.7, 0.1, 0.1, 0.1, 0.0]])
    assert losses.top_mass_mask(w, 0.6).tolist() == [
        [False, True, True, False, False],  # 0.5, then 0.2 crosses 0.6 (the tie goes to the first)
        [True, False, False, False, False],
    ]
    assert float(
        losses.partial_margin(torch.tensor([0.9, 0.5]), torch.tensor([0.1, 0.4]), 0.6)
    ) == pytest.approx((0.0 + 0.5) / 2)


def test_tpm_partial_embedding_keeps_only_the_unmasked_weight() -> None:
    items = torch.tensor([[[2.0, 0.0], [0.0, 3.0], [1.0, 0.0], [5.0, 5.0]]])
    valid = torch.tensor([[True, True, True, False]])
    importance = torch.tensor([[0.5, 0.3, 0.2, 0.0]], requires_grad=True)
    masked = losses.top_mass_mask(importance.detach(), 0.4)  # the 0.5 item alone
    partial = losses.masked_embedding(items, valid, masked, importance)
    assert partial[0].tolist() == pytest.approx([0.2, 0.3])  # unit items, weights kept as they are
    partial.sum().backward()  # the predictor learns through the kept weights
    assert importance.grad is not None and importance.grad[0, :3].tolist() == [0.0, 1.0, 1.0]


def test_hscl_curriculum_and_weights() -> None:
    assert [losses.curriculum_probability(s, 10) for s in (0, 9, 10, 35, 69, 70, 1000)] == pytest.approx(
        [0, 0, 0.15, 0.45, 0.9, 1.0, 1.0]
    )
    s = torch.tensor([[0.9, 0.1, 0.2], [0.1, 0.3, 0.35], [0.0, 0.2, 0.4]])
    # pair 0: easy (0.9 vs 0.2); pair 1: hard (0.35 > 0.3); pair 2: 0.4 vs 0.35, in between
    assert losses.hardness_weights(s, p=0.0).tolist() == pytest.approx([1.0, 1.0, 1.0])
    assert losses.hardness_weights(s, p=0.45).tolist() == pytest.approx([0.55, 1.45, 1.0])
    assert losses.hardness_weights(s, p=1.0).tolist() == pytest.approx([0.2, 2.0, 1.0])


def test_dmae_word_frame_similarity_spreads_to_the_neighbour_frame() -> None:
    e = torch.eye(4)
    neighbour = torch.nn.functional.normalize(e[0] + e[1], dim=0)  # cos 0.707 with e0
    frames = torch.stack([torch.stack([e[0], neighbour, e[2]]), torch.stack([e[3], e[3], e[3]])])
    frame_mask = torch.tensor([[True, True, True], [True, False, False]])
    tokens = torch.stack([torch.stack([e[0], e[2]])]).expand(1, 2, 4)
    weights = torch.tensor([[0.75, 0.25]])
    fine = losses.dmae_similarity(tokens, weights, frames, frame_mask, 0.5)
    c = 1 / math.sqrt(2)
    # word e0: best frame e0 (1.0), its neighbour is `neighbour` (sim c) where the word scores c
    # word e2: best frame e2 (1.0), its most similar other frame scores 0 with the word
    assert fine[0, 0].item() == pytest.approx(0.75 * (1 + 0.5 * c * c) + 0.25 * 1.0, rel=1e-5)
    assert fine[0, 1].item() == pytest.approx(0.0, abs=1e-6)  # a one-frame video: no neighbour


def test_word_weights_favour_rare_content_words() -> None:
    captions = [["a", "red", "cat"], ["a", "blue", "cat"], ["a", "red", "bus"]]
    idf = inverse_document_frequency(captions)
    w = word_weights(["", "a", "blue", "cat", ""], idf)
    assert w.sum() == pytest.approx(1.0)
    assert w[0] == w[4] == 0.0  # special tokens
    assert w[2] > w[3] > w[1]  # blue (1 caption) > cat (2) > a (function word, in all)


def test_untrained_model_is_zero_shot() -> None:
    model = VideoTextModel(ModelConfig(descriptor_dim=8, text_dim=8, temporal=True)).eval()
    zero_shot = torch.nn.functional.normalize(torch.randn(2, 5, 8), dim=-1)
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    frames = model.video.frames(torch.randn(2, 5, 8), zero_shot, mask)
    assert torch.allclose(frames, zero_shot, atol=1e-6)
    pooled = model.video.pool(frames, mask)
    expected = torch.nn.functional.normalize(zero_shot[1, :3].mean(0), dim=0)
    assert torch.allclose(pooled[1], expected, atol=1e-6)
    sentence = torch.randn(3, 8)
    assert torch.allclose(model.encode_sentences(sentence), torch.nn.functional.normalize(sentence, dim=-1))


def test_fine_grained_scenes_come_with_near_misses() -> None:
    scenes = fine_grained_scenes(5, seed=1)
    assert len(scenes) == 20 and scenes == fine_grained_scenes(5, seed=1)
    for group in range(5):
        base, colour, moved, count = scenes[4 * group : 4 * group + 4]
        assert colour.colour != base.colour and colour.noun == base.noun
        assert (moved.motion, moved.place) != (base.motion, base.place)
        assert count.count != base.count
        assert len({c for s in (base, colour, moved, count) for c in s.captions()}) == 8


@pytest.fixture(scope="module")
def captioned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("captioned")
    make_fine_grained_set(root / "videos", groups=3, duration_s=4.0)
    return root


@pytest.mark.slow
def test_train_text_end_to_end_resume_and_search(captioned: Path) -> None:
    videos, out = captioned / "videos", captioned / "run"
    args = ["train", "text", "--captions", videos / "captions.jsonl", "--videos", videos, "--out", out]
    proc = run_vcopy(*args, "--epochs", "2", "--batch-size", "4")
    assert proc.returncode == 0, proc.stderr
    assert "12 videos (10 train, 2 held out), 24 captions" in proc.stderr
    log = [json.loads(line) for line in (out / "train-log.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in log] == [1, 2]
    assert {"r1", "r5", "r10", "rsum", "median_rank", "mean_rank"} <= set(log[0]["validation"])
    assert set(log[0]["loss"]) == {"infonce"}
    assert all(np.isfinite(list(e["loss"].values())).all() for e in log)

    again = run_vcopy(*args, "--epochs", "3", "--batch-size", "4", "--resume")
    assert again.returncode == 0, again.stderr
    log = [json.loads(line) for line in (out / "train-log.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in log] == [1, 2, 3]  # resumed after epoch 2, nothing re-done
    other = run_vcopy(*args, "--epochs", "4", "--batch-size", "4", "--no-layouts", "--resume")
    assert other.returncode != 0 and "other training settings" in other.stderr

    results = {}
    for model in ("text-model.onnx", "text-model.pt"):  # what search runs; torch weights exported first
        search = run_vcopy(
            "search-text", "three red cats", "--library", out / "library", "--model", out / model,
            "--top", "3", "--json", "-", check_json=True,
        )  # fmt: skip
        assert search.returncode == 0, search.stderr
        report = json.loads(search.stdout)
        assert [m["role"] for m in report["models"]] == ["text_encoder", "text_space"]
        assert report["models"][1]["name"].startswith("trained/")
        results[model] = report["queries"][0]["results"]
        assert len(results[model]) == 3
    assert [r["path"] for r in results["text-model.onnx"]] == [r["path"] for r in results["text-model.pt"]]
    scores = [[r["score"] for r in results[m]] for m in results]
    assert np.allclose(*scores, atol=1e-5)
    weights = torch.load(out / "text-model.pt", weights_only=False)
    assert weights["config"]["layout_dim"] == LAYOUT_GRID**2 * LAYOUT_DIMS  # reads layouts by default

    older = captioned / "older-library"  # as a vcopy from before layouts left its videos
    shutil.copytree(out / "library", older, ignore=shutil.ignore_patterns("text", "write.lock"))
    with sqlite3.connect(older / "library.sqlite") as db:
        db.execute("DELETE FROM frame_layouts")
    search_older = ["search-text", "three red cats", "--library", older, "--model", out / "text-model.pt"]
    proc = run_vcopy(*search_older, "--json", "-")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["queries"][0]["results"] == []
    assert "12 videos were indexed by an older vcopy" in proc.stderr
    proc = run_vcopy("index", videos, "--library", older)
    assert proc.returncode == 0 and "indexed 12, skipped 0" in proc.stdout, proc.stderr
    proc = run_vcopy(*search_older, "--json", "-")
    assert proc.returncode == 0 and len(json.loads(proc.stdout)["queries"][0]["results"]) == 10

    not_weights = captioned / "model.pt"
    not_weights.write_bytes(b"not a torch file")
    proc = run_vcopy("search-text", "a cat", "--library", out / "library", "--model", not_weights)
    assert proc.returncode != 0 and "model.pt" in proc.stderr and "text-model" in proc.stderr


def test_onnx_model_computes_what_torch_does(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = VideoTextModel(ModelConfig(descriptor_dim=8, layout_dim=4, text_dim=8, temporal=True)).eval()
    for parameter in model.parameters():  # untrained weights are zero-shot: give every part a say
        torch.nn.init.normal_(parameter, std=0.3)
    save_model(model, tmp_path / "m.pt", {"descriptor": "d"})
    session = onnx_session(write_onnx(tmp_path / "m.pt"))
    record = json.loads(session.get_modelmeta().custom_metadata_map["vcopy.text_model"])
    assert record["format"] == "vcopy.text-model-onnx/1" and record["descriptor"] == "d"
    sentences, descriptors, zero_shot, layouts = (
        torch.randn(n, w) for n, w in [(3, 8), (5, 8), (5, 8), (5, 4)]
    )
    feed = {"sentences": sentences, "descriptors": descriptors, "zeroshot": zero_shot, "layouts": layouts}
    text, frames = session.run(["text", "frames"], {k: v.numpy() for k, v in feed.items()})
    with torch.no_grad():
        expected = model.video.frames(
            descriptors[None], zero_shot[None], torch.ones(1, 5, dtype=torch.bool), layouts[None]
        )
        assert np.allclose(frames, expected[0].numpy(), atol=1e-5)
        assert np.allclose(text, model.encode_sentences(sentences).numpy(), atol=1e-5)
    assert float(np.abs(frames - zero_shot.numpy()).max()) > 0.1  # the correction did something


def test_train_text_bad_input(tmp_path: Path) -> None:
    captions = tmp_path / "captions.jsonl"
    captions.write_text('{"video": "nothing-here", "caption": "a cat"}\n')
    proc = run_vcopy("train", "text", "--captions", captions, "--videos", tmp_path, "--out", tmp_path / "run")
    assert proc.returncode != 0
    assert "none of the 1 captioned videos is there" in proc.stderr


def test_layout_motion_is_the_change_around_each_frame() -> None:
    layouts = torch.tensor([[0.0, 1.0, 3.0, 6.0], [4.0, 5.0, 7.0, 0.0]])[..., None]
    mask = torch.tensor([[True] * 4, [True, True, True, False]])
    motion = layout_motion(layouts, mask)[..., 0]
    assert motion.tolist() == [[1.0, 3.0, 5.0, 3.0], [1.0, 3.0, 2.0, 0.0]]  # ends use the frame itself
    model = VideoTextModel(ModelConfig(descriptor_dim=8, layout_dim=1, text_dim=8)).eval()
    zero_shot = torch.nn.functional.normalize(torch.randn(2, 4, 8), dim=-1)
    frames = model.video.frames(torch.randn(2, 4, 8), zero_shot, mask, layouts)
    assert torch.allclose(frames, zero_shot, atol=1e-6)  # untrained, still zero-shot
    with pytest.raises(ValueError, match="layouts"):
        model.video.frames(torch.randn(2, 4, 8), zero_shot, mask)


@pytest.mark.slow
def test_the_published_terms_train_beside_infonce(captioned: Path, tmp_path: Path) -> None:
    """examples/text_losses.py's trainer runs every term through vcopy's training loop."""
    videos = captioned / "videos"
    config = losses.VariantConfig(epochs=1, batch_size=4, negnce=True, dmae=True, tpm=True, hscl=True)
    library = captioned / "run" / "library"  # the end-to-end test's (its videos are not decoded again)
    prepared = prepare_data(videos / "captions.jsonl", videos, library, config)
    train_text(prepared.data, tmp_path / "run", config, {}, trainer_class=losses.VariantTrainer)
    log = [json.loads(line) for line in (tmp_path / "run" / "train-log.jsonl").read_text().splitlines()]
    assert set(log[0]["loss"]) == {"infonce", "negnce", "dmae", "tpm"}
    assert np.isfinite(list(log[0]["loss"].values())).all()
