from finprint_training.cli import main


def test_compare_then_report(tiny_data, tmp_path):
    runs = tmp_path / "runs"
    rc = main(
        [
            "compare",
            "--data",
            str(tiny_data),
            "--out",
            str(runs),
            "--backbones",
            "resnet10t",
            "--img-size",
            "32x96",
            "--embed-dim",
            "16",
            "--epochs",
            "1",
            "--batch-size",
            "16",
        ]
    )
    assert rc == 0
    assert sorted(p.name for p in runs.iterdir()) == ["resnet10t__lam0", "resnet10t__lam1"]
    out = tmp_path / "report"
    assert main(["report", str(runs), "--out", str(out), "--default-run", str(runs / "resnet10t__lam1")]) == 0
    text = (out / "report.md").read_text()
    assert "| resnet10t__lam0 |" in text and "| resnet10t__lam1 |" in text
    assert "inpainting improved the clustering metrics: **" in text
    assert "--backbone resnet10t --lam 0" in text  # exact per-run command recorded
    cmds = [ln for ln in text.splitlines() if ln.startswith("- `finprint-train fit")]
    assert len(cmds) == 2 and all(c.count(" --out ") == 1 for c in cmds), cmds
    assert "## Shipped default model" in text and "goal ≥ 0.95" in text
    for png in ("curves.png", "embedding_map.png", "gradcam_montage.png"):
        assert (out / png).stat().st_size > 2000
