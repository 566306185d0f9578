import json

import numpy as np
import pytest
import torch

from finprint_training.cli import build_parser, main
from finprint_training.export import export_onnx, ort_session, parity, sha256_file
from finprint_training.models import BACKBONES, Encoder
from finprint_training.train import TrainConfig, fit

SIZE = (32, 96)


def _cfg(data, out, **kw):
    base = dict(
        data=str(data),
        out=str(out),
        backbone="resnet10t",
        img_size=SIZE,
        embed_dim=32,
        epochs=1,
        batch_size=16,
        lr=2e-3,
        mask_prob=1.0,
        threads=2,
    )
    base.update(kw)
    return TrainConfig(**base)


def test_reconstruction_loss_falls(tiny_data, tmp_path):
    out = fit(_cfg(tiny_data, tmp_path / "run", epochs=4, lam=1.0, mask_recipe="patches"))
    hist = json.loads((out / "history.json").read_text())
    recs = [h["rec"] for h in hist]
    assert all(r is not None and np.isfinite(r) for r in recs)
    assert recs[-1] < 0.8 * recs[0], recs


def test_lambda_zero_has_no_decoder_and_no_rec_loss(tiny_data, tmp_path):
    out = fit(_cfg(tiny_data, tmp_path / "run0", lam=0.0))
    ck = torch.load(out / "checkpoint.pt", weights_only=False)
    assert not any(k.startswith("decoder.") for k in ck["model"])
    assert ck["history"][0]["rec"] is None
    # identity keys are individual/flank of the training split only
    assert ck["keys"] == sorted(f"fish{i:03d}/{f}" for i in range(4) for f in "LR")


def test_fit_evaluate_export_parity_and_selftest(tiny_data, tmp_path):
    run = tmp_path / "run"
    rc = main(
        [
            "fit",
            "--data",
            str(tiny_data),
            "--out",
            str(run),
            "--backbone",
            "resnet10t",
            "--img-size",
            "32x96",
            "--embed-dim",
            "32",
            "--epochs",
            "2",
            "--batch-size",
            "16",
            "--mask-recipe",
            "bands",
        ]
    )
    assert rc == 0
    m = json.loads((run / "metrics.json").read_text())
    for k in (
        "closed_set_top1",
        "closed_set_top5",
        "open_set_rank1",
        "open_set_map",
        "silhouette",
        "davies_bouldin",
        "calinski_harabasz",
        "kmeans_nmi",
        "kmeans_ari",
        "focus_body",
        "focus_striped",
    ):
        assert k in m and np.isfinite(m[k]), k
    assert 0 <= m["open_set_rank1"] <= 1 and 0 <= m["focus_body"] <= 1
    assert m["open_set_identities"] == 6  # 3 test individuals × 2 flanks
    assert (run / "gradcam.png").stat().st_size > 1000

    models = tmp_path / "models"
    assert main(["export", str(run), "--out", str(models), "--name", "enc"]) == 0
    card = json.loads((models / "enc.json").read_text())
    assert card["format"] == "finprint-encoder/1"
    assert card["onnx_sha256"] == sha256_file(models / "enc.onnx")
    assert card["input"]["height"] == 32 and card["input"]["width"] == 96
    assert card["output"] == {"name": "embedding", "dim": 32, "l2_normalized": True}
    assert card["training"]["parity_max_abs_diff"] <= 1e-4
    assert "open_set_rank1" in card["metrics"]
    # The self-test fixture: preprocess per the card, run ORT, get the stored embeddings back.
    st = json.loads((models / "enc.selftest.json").read_text())
    sess = ort_session(models / "enc.onnx")
    mean = np.array(card["input"]["mean"], np.float32)
    std = np.array(card["input"]["std"], np.float32)
    for c in st["crops"]:
        rgb = np.array(c["rgb_hwc_u8"], np.uint8).reshape(32, 96, 3)
        x = ((rgb / card["input"]["scale"] - mean) / std).astype(np.float32).transpose(2, 0, 1)[None]
        got = sess.run(["embedding"], {"input": x})[0][0]
        assert np.abs(got - np.array(c["expected_embedding"])).max() <= st["tolerance"]
        assert abs(np.linalg.norm(got) - 1) < 1e-4
    # Native-size cases for the Rust identity tests (resized there by half-pixel bilinear, no antialias).
    assert len(st["cases"]) == len(st["crops"])
    for c in st["cases"]:
        assert (c["width"], c["height"]) == (192, 64) and len(c["rgb_hex"]) == 192 * 64 * 3 * 2
        assert len(c["embedding"]) == 32 and abs(np.linalg.norm(c["embedding"]) - 1) < 1e-4
        assert len(c["tensor_sample"]) == len(range(0, 3 * 32 * 96, c["tensor_stride"]))


@pytest.mark.parametrize("backbone", list(BACKBONES))
def test_every_backbone_embeds_reconstructs_and_exports(backbone, tmp_path):
    torch.manual_seed(0)
    model = Encoder(backbone, SIZE, embed_dim=16, decoder=True).eval()
    x = torch.randn(3, 3, *SIZE)
    fmap = model.feature_map(x)
    assert model.reconstruct(fmap).shape == (3, 3, *SIZE)
    emb = model(x)
    assert emb.shape == (3, 16)
    assert torch.allclose(emb.norm(dim=1), torch.ones(3), atol=1e-5)
    path = tmp_path / f"{backbone}.onnx"
    export_onnx(model, SIZE, path)
    assert parity(model, path, torch.randn(5, 3, *SIZE)) <= 1e-4  # batch 5 ≠ export batch: dynamic axis


def test_every_subcommand_has_help(capsys):
    parser = build_parser()
    for cmd in ("fit", "evaluate", "export", "gradcam", "report", "compare"):
        with pytest.raises(SystemExit) as e:
            parser.parse_args([cmd, "--help"])
        assert e.value.code == 0
        assert "usage" in capsys.readouterr().out


def test_bad_config_is_rejected(tiny_data, tmp_path):
    with pytest.raises(ValueError, match="mask_ratio"):
        fit(_cfg(tiny_data, tmp_path / "x", mask_ratio=1.5))
    with pytest.raises(ValueError, match="backbone"):
        fit(_cfg(tiny_data, tmp_path / "x", backbone="alexnet"))


def test_simulator_layout_val_individuals_join_training(tmp_path):
    from finprint_training.data import load_training_sets

    from fixture_data import write_dataset

    root = write_dataset(tmp_path / "sim", train_ids=3, val_ids=2, test_ids=2, train_images=5)
    train, val, mode = load_training_sets(root, SIZE, holdout=0.2)
    assert "added to training" in mode
    assert len(train.keys) == 10  # (3 train + 2 val individuals) × 2 flanks
    assert val is not None and len(val) == 10  # one of five images per identity held out
    assert len(train) == 40
    assert not set(train.paths) & set(val.paths)
    assert not any("test" in p.parts for p in train.paths + val.paths)
    lab_train, lab_val, lab_mode = load_training_sets(write_dataset(tmp_path / "lab"), SIZE)
    assert "other images" in lab_mode and len(lab_train.keys) == 8 and lab_val is not None


def test_init_starts_from_previous_weights(tiny_data, tmp_path):
    a = fit(_cfg(tiny_data, tmp_path / "a"))
    b = fit(_cfg(tiny_data, tmp_path / "b", init=str(a), lr=0.0, seed=5))
    wa = torch.load(a / "checkpoint.pt", weights_only=False)
    wb = torch.load(b / "checkpoint.pt", weights_only=False)
    k = "body.conv1.0.weight"
    assert torch.equal(wa["model"][k], wb["model"][k])
    assert torch.equal(wa["head"]["weight"], wb["head"]["weight"])
    c = fit(_cfg(tiny_data, tmp_path / "c", lr=0.0, seed=5))
    assert not torch.equal(wa["model"][k], torch.load(c / "checkpoint.pt", weights_only=False)["model"][k])
