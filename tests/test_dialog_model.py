"""Visual dialog models (late fusion + discriminative/generative decoders): spec checks, shapes, gradients,
learning, generative ranking against brute force, generation, and one CNN pass per image."""

from __future__ import annotations

import pytest
import torch

from vltk.config import from_dict, to_dict
from vltk.decoding import beam_search, greedy
from vltk.errors import ConfigError
from vltk.tasks.dialog.decoders import discriminative_loss
from vltk.tasks.dialog.model import DialogModelConfig, build_dialog_model

V, PAD, START, END = 30, 0, 1, 2
SPEC = {
    "encoder": {"name": "small_cnn", "channels": [8, 16], "image_size": 16},
    "text": {"name": "rnn", "embed_dim": 16, "hidden_dim": 24},
    "attention": {"name": "additive", "dim": 12},
    "fusion": {"dim": 20, "dropout": 0.0},
}


def dialog_tensors(
    B: int = 2, R: int = 3, n_options: int = 5, U: int = 7, seed: int = 0
) -> dict[str, torch.Tensor]:
    """Random DialogBatch-shaped tensors (the fields the model reads), with padding and a masked round."""
    g = torch.Generator().manual_seed(seed)
    questions = torch.randint(3, V, (B, R, 6), generator=g)  # [B, R, Tq]
    question_lengths = torch.randint(1, 7, (B, R), generator=g)  # [B, R]
    history = torch.randint(3, V, (B, R, 9), generator=g)  # [B, R, Th]
    history_lengths = torch.randint(1, 10, (B, R), generator=g)  # [B, R]
    history_lengths[:, 0] = 0  # an empty history (no caption) must work too
    for seq, lengths in ((questions, question_lengths), (history, history_lengths)):
        mask = torch.arange(seq.shape[-1]) < lengths.unsqueeze(-1)  # [B, R, T]
        seq.masked_fill_(~mask, PAD)
    option_lengths = torch.randint(2, 6, (U,), generator=g)  # [U], <start>/<end> included
    option_tokens = torch.randint(3, V, (U, 6), generator=g)  # [U, Ta]
    option_tokens[:, 0] = START
    for u, n in enumerate(option_lengths.tolist()):
        option_tokens[u, n - 1] = END
        option_tokens[u, n:] = PAD
    gt_index = torch.randint(0, n_options, (B, R), generator=g)  # [B, R]
    gt_index[0, -1] = -1
    round_mask = torch.ones(B, R, dtype=torch.bool)
    round_mask[-1, -1] = False
    return {
        "images": torch.randn(B, 3, 16, 16, generator=g),
        "questions": questions,
        "question_lengths": question_lengths,
        "history": history,
        "history_lengths": history_lengths,
        "option_tokens": option_tokens,
        "option_lengths": option_lengths,
        "options": torch.randint(0, U, (B, R, n_options), generator=g),
        "gt_index": gt_index,
        "round_mask": round_mask,
    }


INPUTS = (
    "images", "questions", "question_lengths", "history", "history_lengths", "option_tokens",
    "option_lengths", "options",
)  # fmt: skip


def model_for(decoder: str, **flags: bool):
    torch.manual_seed(0)
    return build_dialog_model({**SPEC, "decoder": decoder, **flags}, vocab_size=V, pad_id=PAD)


def resolve_dialog_spec(section: dict) -> dict:
    return to_dict(from_dict(DialogModelConfig, section, "model"))


def test_spec_defaults_and_errors_name_the_key_or_choice() -> None:
    resolved = resolve_dialog_spec({})
    assert resolve_dialog_spec(resolved) == resolved  # runs save the resolved spec and rebuild from it
    assert resolved["name"] == "late_fusion" and resolved["decoder"]["name"] == "discriminative"
    assert resolved["text"]["embed_dim"] == 300 and resolved["fusion"]["dim"] == 512
    assert (
        resolve_dialog_spec({"decoder": {"name": "generative", "hidden_dim": 64}})["decoder"]["hidden_dim"]
        == 64
    )
    assert resolve_dialog_spec({"decoder": "generative"})["decoder"]["name"] == "generative"
    assert resolve_dialog_spec({"decoder": {"dropout": 0.5}})["decoder"]["name"] == "discriminative"
    with pytest.raises(ConfigError, match=r"model\.fusoin.*did you mean 'model\.fusion'"):
        resolve_dialog_spec({"fusoin": {}})
    with pytest.raises(ConfigError, match=r"at model\.decoder\.name 'generativ'; did you mean 'generative'"):
        resolve_dialog_spec({"decoder": "generativ"})
    with pytest.raises(ConfigError, match=r"model\.fusion\.dimm.*did you mean 'model\.fusion\.dim'"):
        resolve_dialog_spec({"fusion": {"dimm": 3}})
    with pytest.raises(ConfigError, match=r"model\.fusion\.name: the fusion is chosen by model\.name"):
        resolve_dialog_spec({"fusion": {"name": "late_fusion"}})
    with pytest.raises(ConfigError, match=r"model\.decoder\.vocab_size is derived"):
        resolve_dialog_spec({"decoder": {"name": "generative", "vocab_size": 3}})
    with pytest.raises(ConfigError, match=r"model\.use_image = 'yes'.*bool"):
        resolve_dialog_spec({"use_image": "yes"})


ABLATIONS = [
    {"use_image": True, "use_history": True},
    {"use_image": True, "use_history": False},  # no history
    {"use_image": False, "use_history": False},  # question only
]


@pytest.mark.parametrize("decoder", ["discriminative", "generative"])
@pytest.mark.parametrize("flags", ABLATIONS, ids=["full", "no_history", "question_only"])
def test_shapes_and_every_trainable_parameter_gets_a_gradient(decoder: str, flags: dict) -> None:
    model = model_for(decoder, **flags)
    data = dialog_tensors()
    output = model(*(data[k] for k in INPUTS))
    assert output.scores.shape == (2, 3, 5) and torch.isfinite(output.scores).all()
    assert output.fused.shape == (6, 20)
    if flags["use_image"]:
        assert output.attention.shape == (2, 3, 16) and output.grid_size == (4, 4)
        assert torch.allclose(output.attention.sum(-1), torch.ones(2, 3))
    else:
        assert output.attention is None
        assert not any(p.requires_grad for p in model.image_encoder.parameters())
    loss = model.loss(*(data[k] for k in INPUTS), data["gt_index"], data["round_mask"])
    loss.backward()
    missing = [
        name
        for name, p in model.named_parameters()
        if p.requires_grad and (p.grad is None or not torch.isfinite(p.grad).all() or p.grad.abs().sum() == 0)
    ]
    assert not missing, missing
    assert model.encoder.use_history == flags["use_history"]


def test_embeddings_are_shared_across_question_history_and_answers() -> None:
    for decoder in ("discriminative", "generative"):
        model = model_for(decoder)
        shared = model.encoder.question_encoder.embedding
        assert model.encoder.history_encoder.embedding is shared and model.decoder.embedding is shared
    separate = model_for("generative", share_embeddings=False)
    assert separate.decoder.embedding is not separate.encoder.question_encoder.embedding


def test_the_cnn_runs_once_per_image_not_once_per_round() -> None:
    model = model_for("discriminative")
    seen: list[tuple[int, ...]] = []
    model.image_encoder.register_forward_hook(lambda module, args, out: seen.append(tuple(args[0].shape)))
    data = dialog_tensors(B=2, R=4)
    model(*(data[k] for k in INPUTS))
    assert seen == [(2, 3, 16, 16)]


def test_discriminative_loss_ignores_unknown_and_masked_rounds() -> None:
    scores = torch.randn(2, 2, 4)
    gt = torch.tensor([[1, -1], [3, 0]])
    mask = torch.tensor([[True, True], [True, False]])
    expected = torch.nn.functional.cross_entropy(scores[[0, 1], [0, 0]], torch.tensor([1, 3]))
    assert torch.allclose(discriminative_loss(scores, gt, mask), expected)
    assert discriminative_loss(scores, torch.full((2, 2), -1)).item() == 0.0


def test_discriminative_training_beats_chance_on_a_synthetic_task() -> None:
    """The right answer is the word ``question word + 10``: learnable from the question alone."""
    torch.manual_seed(0)
    model = model_for("discriminative", use_history=False)
    B, R, n_options, words = 16, 2, 5, 8
    option_tokens = torch.tensor([[START, 13 + w, END] for w in range(words)])  # [U, 3]
    option_lengths = torch.full((words,), 3)

    def batch(seed: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        word = torch.randint(0, words, (B, R), generator=g)  # [B, R]
        distractors = torch.stack([torch.randperm(words, generator=g) for _ in range(B * R)]).view(
            B, R, words
        )  # [B, R, words]
        others = distractors.masked_select(distractors != word.unsqueeze(-1)).view(B, R, words - 1)
        gt = torch.randint(0, n_options, (B, R), generator=g)  # [B, R]
        options = others[..., : n_options - 1]  # [B, R, O-1]
        full = torch.empty(B, R, n_options, dtype=torch.long)
        for b in range(B):
            for r in range(R):
                row = options[b, r].tolist()
                row.insert(int(gt[b, r]), int(word[b, r]))
                full[b, r] = torch.tensor(row)
        return {
            "images": torch.randn(B, 3, 16, 16, generator=g),
            "questions": (3 + word).unsqueeze(-1),
            "question_lengths": torch.ones(B, R, dtype=torch.long),
            "history": torch.zeros(B, R, 1, dtype=torch.long),
            "history_lengths": torch.zeros(B, R, dtype=torch.long),
            "option_tokens": option_tokens,
            "option_lengths": option_lengths,
            "options": full,
            "gt_index": gt,
            "round_mask": torch.ones(B, R, dtype=torch.bool),
        }

    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(60):
        data = batch(step)
        loss = model.loss(*(data[k] for k in INPUTS), data["gt_index"], data["round_mask"])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
    with torch.no_grad():
        data = batch(10_000)
        scores = model(*(data[k] for k in INPUTS)).scores  # [B, R, O]
    accuracy = (scores.argmax(-1) == data["gt_index"]).float().mean().item()
    assert accuracy > 0.8, f"R@1 {accuracy:.2f} (chance 0.2)"


@pytest.mark.parametrize(
    ("length_normalise", "chunked", "same_start"),
    [(False, True, True), (True, False, True), (False, True, False)],
    ids=["sum-chunked", "mean-one_chunk", "sum-mixed_first_tokens"],
)
def test_generative_ranking_equals_brute_force_log_likelihood(
    length_normalise: bool, chunked: bool, same_start: bool
) -> None:
    model = model_for("generative").eval()
    model.length_normalise = length_normalise
    if chunked:
        model.decoder.chunk_elements = 1  # one round per chunk: the chunking is exercised
    data = dialog_tensors(B=2, R=3, n_options=5, U=7)
    if not same_start:
        data["option_tokens"][0, 0] = 5  # the first step cannot be shared across options
    with torch.no_grad():
        output = model(*(data[k] for k in INPUTS))
        fused = output.fused  # [B*R, F]
        options = data["options"].view(6, 5)
        for i in range(6):
            for j in range(5):
                u = int(options[i, j])
                n = int(data["option_lengths"][u])
                answer = data["option_tokens"][u, :n].unsqueeze(0)  # [1, n]
                logits = model.decoder.answer_logits(fused[i : i + 1], answer)  # [1, n-1, V]
                logprobs = torch.log_softmax(logits, dim=-1)[0]  # [n-1, V]
                expected = logprobs.gather(1, answer[0, 1:, None]).sum()
                if length_normalise:
                    expected = expected / (n - 1)
                assert torch.allclose(output.scores.view(6, 5)[i, j], expected, atol=1e-5), (i, j)
    assert (output.scores < 0).all()


def test_generation_finishes_and_beam_one_equals_greedy() -> None:
    model = model_for("generative").eval()
    with torch.no_grad():
        model.decoder.output.bias[END] += 2.0  # an untrained model that still ends its answers
        data = dialog_tensors()
        fused = model(*(data[k] for k in INPUTS)).fused  # [6, F]
        beams = model.generate(fused, beam_size=3, max_length=8, n_best=2)
        assert beams.tokens.shape[:2] == (6, 2)
        assert (beams.lengths < 8).all(), "every answer should end with <end> before the limit"
        assert not ((beams.tokens == END) | (beams.tokens == START)).any()
        state = model.decoder.start(fused)
        one = beam_search(
            model.decoder.step, state, batch_size=6, bos_id=START, eos_id=END, pad_id=PAD, beam_size=1,
            max_length=8,
        ).best()  # fmt: skip
        path = greedy(
            model.decoder.step, state, batch_size=6, bos_id=START, eos_id=END, pad_id=PAD, max_length=8
        )
        assert torch.equal(one.tokens, path.tokens) and torch.allclose(one.scores, path.scores)
        # The beam's score of a finished answer is its log-likelihood, as the ranking computes it.
        best = beams.best()
        words = best.tokens
        tokens = torch.full((6, words.shape[1] + 2), PAD)
        tokens[:, 0] = START
        for i, n in enumerate(best.lengths.tolist()):
            tokens[i, 1 : n + 1] = words[i, :n]
            tokens[i, n + 1] = END
        ranked = model.decoder.score_options(fused, tokens, best.lengths + 2, torch.arange(6).unsqueeze(1))
        assert torch.allclose(ranked.squeeze(1), best.scores, atol=1e-5)


def test_the_discriminative_model_cannot_generate() -> None:
    model = model_for("discriminative")
    with pytest.raises(ConfigError, match="generative decoder"):
        model.generate(torch.zeros(2, 20))


def test_generative_loss_is_the_token_nll_of_the_known_ground_truth_answers() -> None:
    model = model_for("generative").eval()
    data = dialog_tensors()
    with torch.no_grad():
        fused = model(*(data[k] for k in INPUTS)).fused  # [6, F]
        loss = model.loss(*(data[k] for k in INPUTS), data["gt_index"], data["round_mask"])
        from_fused = model.decoder_loss(
            fused, data["option_tokens"], data["option_lengths"], data["options"], data["gt_index"],
            data["round_mask"],
        )  # fmt: skip
        nll, count = 0.0, 0
        for i, (b, r) in enumerate((b, r) for b in range(2) for r in range(3)):
            gt = int(data["gt_index"][b, r])
            if gt < 0 or not data["round_mask"][b, r]:
                continue
            u = int(data["options"][b, r, gt])
            n = int(data["option_lengths"][u])
            answer = data["option_tokens"][u, :n].unsqueeze(0)  # [1, n]
            logprobs = torch.log_softmax(model.decoder.answer_logits(fused[i : i + 1], answer), -1)[0]
            nll -= logprobs.gather(1, answer[0, 1:, None]).sum().item()
            count += n - 1
        unknown = torch.full_like(data["gt_index"], -1)
        nothing = model.loss(*(data[k] for k in INPUTS), unknown, data["round_mask"])
    assert count > 0 and abs(loss.item() - nll / count) < 1e-5 and abs(from_fused.item() - loss.item()) < 1e-6
    assert nothing.item() == 0.0
