"""Diagnostics: text properties, correlation search, activation pages, gradient flow through time, CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from vltk.cli.main import app
from vltk.tasks.lm.model import RNNLanguageModel
from vltk.viz.gradient_flow import gradient_norms_through_time
from vltk.viz.rnn_activations import (
    activations_html,
    correlation_search,
    record_activations,
    text_features,
)


def test_text_features_track_quotes_columns_indentation():
    text = "a = 'x#'\n    b  # c\n"
    f = text_features(text)
    assert f["in_quotes"][text.index("'") : text.index("'") + 4].tolist() == [1, 1, 1, 1]
    assert f["in_quotes"][text.index("#")] == 1 and f["in_comment"][text.index("#")] == 0  # '#' inside quotes
    assert f["in_comment"][text.rindex("#")] == 1
    assert f["line_position"][text.index("b")] == 4 and f["indentation"][text.index("b")] == 4
    assert f["indentation"][0] == 0


def test_correlation_search_finds_the_planted_unit():
    rng = np.random.default_rng(0)
    feature = np.tile(np.arange(10.0), 20)
    activations = rng.standard_normal((200, 6))
    activations[:, 4] = -feature + 0.01 * rng.standard_normal(200)
    best = correlation_search(activations, {"line_position": feature, "flat": np.ones(200)}, top=1)
    assert [(m.feature, m.unit) for m in best] == [("line_position", 4)]
    assert best[0].correlation < -0.99
    page = activations_html("ab\nc" * 50, activations, best, "t")
    assert "unit 4" in page and page.count("<span") == 200


@pytest.mark.parametrize("cell", ["lstm", "gru", "mut3"])
def test_record_activations_matches_the_fused_forward(cell):
    torch.manual_seed(0)
    model = RNNLanguageModel(7, cell=cell, hidden_dim=5, embed_dim=4, num_layers=2)
    ids = torch.randint(0, 7, (9,))
    acts = record_activations(model, ids, state="h")
    assert acts.shape == (9, 10)
    outputs, _ = model.rnn(model.embed(ids.view(1, -1)))
    np.testing.assert_allclose(acts[:, 5:], outputs[0].detach().numpy(), atol=1e-5)  # top layer = outputs


def test_gradient_flow_vanishes_for_a_contracting_rnn():
    torch.manual_seed(0)
    model = RNNLanguageModel(5, cell="rnn", hidden_dim=8, embed_dim=4)
    with torch.no_grad():
        model.rnn.rnn.weight_hh_l0.mul_(0.2)
    ids = torch.randint(0, 5, (2, 31))
    norms = gradient_norms_through_time(model, ids[:, :-1], ids[:, 1:])
    assert norms.shape == (30,)
    assert norms[0] < norms[-1] * 1e-6  # 29 steps back: geometrically smaller


def test_diagnose_cli(tmp_path):
    text = tmp_path / "code.py"
    text.write_text("def f(x):\n    return 'a' + x\n" * 30, encoding="utf-8")
    runner = CliRunner()
    out = tmp_path / "grad"
    result = runner.invoke(
        app,
        ["diagnose", "gradients", "--text", str(text), "--out", str(out), "--hidden", "8", "--steps", "20"]
        + ["--train-steps", "2", "--cells", "rnn,lstm"],
    )
    assert result.exit_code == 0, result.output
    assert (out / "gradient_flow.png").stat().st_size > 1000 and "T-10" in result.output
    bad = runner.invoke(app, ["diagnose", "gradients", "--text", str(text), "--cells", "lstn"])
    assert bad.exit_code == 2 and "did you mean 'lstm'" in bad.output


def test_text_features_c_comments_and_tabs():
    text = "int a; /* x\n\ty */ b // z\n#define Q 1 # not python\n"
    f = text_features(text)
    assert f["in_comment"][text.index("x")] == 1 and f["in_comment"][text.index("y")] == 1
    assert f["in_comment"][text.index("b")] == 0 and f["in_comment"][text.index("z")] == 1
    assert f["indentation"][text.index("y")] == 8
    assert f["in_comment"][text.index("Q")] == 0 and f["in_comment"][text.index("not")] == 1
