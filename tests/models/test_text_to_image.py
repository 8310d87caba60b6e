import json

import pytest
import torch
import torch.nn.functional as F

from lyra3d.data import worlds
from lyra3d.data.worlds import caption_vocabulary
from lyra3d.errors import InputError
from lyra3d.models.text_to_image import TextToImageConfig, TextToImageModel, WordTokenizer, flow_loss
from lyra3d.models.tokenizer import TokenizerConfig, VideoTokenizer


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models: a second thread only adds overhead."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_model(seed: int = 0) -> TextToImageModel:
    torch.manual_seed(seed)
    cfg = TextToImageConfig(vocab=caption_vocabulary(), dim=32, depth=2, heads=2, text_dim=16, text_depth=1, latent_height=4, latent_width=8,
                            latent_mean=[0.1] * 16, latent_std=[2.0] * 16)
    return TextToImageModel(cfg).eval()


def tiny_tokenizer() -> VideoTokenizer:
    torch.manual_seed(0)
    return VideoTokenizer(TokenizerConfig(base_channels=8)).eval()


def test_word_tokenizer_round_trip_unknown_words_and_empty_prompts():
    words = WordTokenizer(caption_vocabulary())
    text = "a red sphere and two blue and white striped boxes on a mottled gray floor, sunset sky"
    ids = words.encode(text)
    assert words.index["<unk>"] not in ids and words.decode(ids) == text
    assert words.encode("A RED Sphere") == words.encode("a red sphere")
    unk = words.encode("a red teapot")
    assert unk[-1] == words.index["<unk>"] and unk[:2] == words.encode("a red")
    for bad in ("", "   ", ", ;!"):
        with pytest.raises(InputError, match="no words"):
            words.encode(bad)
    with pytest.raises(InputError):
        words.batch([])
    ids, mask = words.batch(["a red sphere", "a blue box on a gray floor"])
    assert ids.shape == mask.shape == (2, 7) and mask.sum(1).tolist() == [3, 7] and (ids[0, 3:] == 0).all()
    for seed in (0, 1):  # the generator's captions are inside the vocabulary
        caption = worlds.make_world(seed, room=True).caption
        assert words.decode(words.encode(caption)) == caption


def test_shapes_drop_and_batch_independence():
    m = tiny_model()
    ids, mask = m.tokenize(["a red sphere, blue sky", "two green boxes on a gray and white checkered floor"])
    x = torch.randn(2, 16, 4, 8)
    text = m.encode_text(ids, mask, drop=torch.tensor([False, True]))
    assert text.tokens.shape == (2, ids.shape[1], 32) and text.pooled.shape == (2, 32)
    assert text.mask[1].tolist() == [True] + [False] * (ids.shape[1] - 1)
    assert m(x, torch.rand(2), text).shape == x.shape
    with pytest.raises(InputError, match="latents must be"):
        m(x[..., :7], torch.rand(2), text)
    # zero-initialised output heads: give them weights so the test sees the text
    for p in m.parameters():
        if p.abs().sum() == 0:
            torch.nn.init.normal_(p, std=0.05)
    tok = tiny_tokenizer()
    a = m.generate("a red sphere, blue sky", tok, steps=3, seed=1)
    assert a.shape == (1, 3, 32, 64) and a.min() >= 0 and a.max() <= 1
    # padding does not change a prompt's image: alone or batched with a longer prompt
    both = m.generate(["a red sphere, blue sky", "two green boxes on a gray and white checkered floor"], tok,
                      steps=3, seed=1)
    assert torch.allclose(both[:1], a, atol=1e-4)
    assert not torch.allclose(both[0], both[1], atol=1e-3)


def test_generate_is_deterministic_per_seed():
    m = tiny_model()
    for p in m.parameters():
        if p.abs().sum() == 0:
            torch.nn.init.normal_(p, std=0.05)
    tok = tiny_tokenizer()
    prompt = "a mottled cyan cylinder on a blue and cyan checkered floor, overcast sky"
    a = m.generate(prompt, tok, steps=2, guidance=3.0, seed=7)
    b = m.generate(prompt, tok, steps=2, guidance=3.0, seed=7)
    c = m.generate(prompt, tok, steps=2, guidance=3.0, seed=8)
    assert torch.equal(a, b) and not torch.allclose(a, c, atol=1e-3)
    with pytest.raises(InputError, match="no words"):
        m.generate("", tok)
    with pytest.raises(InputError, match="steps"):
        m.generate(prompt, tok, steps=0)


def test_training_teaches_the_model_to_read_the_text():
    # Latents that are a function of the caption's colour: after a little training the loss with the caption
    # is below the loss without it (same noise and times), and below the loss at the start.
    m = tiny_model().train()
    colours = ["red", "blue", "green", "yellow"]
    target = {c: torch.randn(16, 4, 8, generator=torch.Generator().manual_seed(i)) for i, c in enumerate(colours)}
    ids, mask = m.tokenize([f"a {c} sphere" for c in colours])
    x0 = torch.stack([target[c] for c in colours])

    def held_out(drop: float) -> float:
        with torch.no_grad():
            return flow_loss(m, x0, ids, mask, drop, torch.Generator().manual_seed(99)).item()

    start = held_out(0.0)
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(80):
        pick = torch.randint(0, 4, (8,), generator=g)
        loss = flow_loss(m, x0[pick], ids[pick], mask[pick], drop_prob=0.1, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert held_out(0.0) < 0.8 * start and held_out(0.0) < held_out(1.0)


def test_save_and_load_round_trip(tmp_path):
    m = tiny_model()
    for p in m.parameters():
        if p.abs().sum() == 0:
            torch.nn.init.normal_(p, std=0.05)
    m.save_pretrained(tmp_path / "t2i")
    n = TextToImageModel.from_pretrained(tmp_path / "t2i")
    assert n.config == m.config and n.words.vocab == caption_vocabulary()
    assert torch.equal(n.latent_std, m.latent_std)
    for (k, a), (_, b) in zip(m.state_dict().items(), n.state_dict().items()):
        assert torch.equal(a, b), k
    tok = tiny_tokenizer()
    assert torch.equal(m.generate("a red box", tok, steps=2, seed=3), n.generate("a red box", tok, steps=2, seed=3))


def test_mirrored_world_is_the_flipped_render_with_the_mirrored_caption():
    from lyra3d.core.cameras import default_camera
    from lyra3d.train.text_to_image import mirror_world

    w = worlds.make_world(5, room=True)
    m = mirror_world(w)
    cam = default_camera(48, 32)
    a, b = worlds.render(w, cam, shadows=False), worlds.render(m, cam, shadows=False)
    assert torch.allclose(a.depth.flip(-1), b.depth, atol=1e-4) and torch.equal(a.mask.flip(-1), b.mask)
    phrases = [o["phrase"] for o in sorted(w.labels, key=lambda o: o["center"][0] / o["center"][2])]
    assert m.caption.startswith(phrases[-1]) and w.caption.startswith(phrases[0])


def test_judge_targets_label_maps_and_scores():
    from lyra3d.core.cameras import default_camera
    from lyra3d.train.prompt_judge import JudgeConfig, LabelJudge, judge_scores, label_maps, world_targets

    jc = JudgeConfig(map_height=6, map_width=10)
    w = worlds.make_world(2)
    t = world_targets(w, jc)
    assert {jc.kinds[i] for i in t["kinds"].nonzero().flatten().tolist()} == {o["kind"] for o in w.labels}
    assert int(t["objects"].sum()) == len({(o["color"], o["kind"]) for o in w.labels})
    assert jc.skies[int(t["sky"])] == w.sky.name
    r = worlds.render(w, default_camera(80, 48), shadows=False)
    maps = label_maps(w, r.surface, jc)
    assert maps.shape == (1, 2, 6, 10) and ((maps[:, 0] == 0) == (maps[:, 1] == 255)).all()
    # a judge whose logits are the true maps sees exactly the objects covering >= min_cells cells
    judge = LabelJudge(jc)
    one_hot = lambda m, n: F.one_hot(m.long().clamp(max=n - 1), n).permute(0, 3, 1, 2).float()  # noqa: E731
    seen = judge.presence({"kind_map": one_hot(maps[:, 0], 4), "color_map": one_hot(maps[:, 1], 12)})
    assert (seen["objects"][0] <= t["objects"]).all() and seen["objects"].sum() >= 1
    batch = {k: v[None] for k, v in t.items()}
    assert all(v == 1.0 for v in judge_scores(batch, batch).values())
    assert judge(torch.rand(2, 3, 48, 80))["kind_map"].shape == (2, 4, 6, 10)


def test_tiny_training_run_and_prompt_evaluation(tmp_path):
    from lyra3d.train.text_to_image import TextToImageTrainConfig, train

    config = TextToImageTrainConfig.tiny(str(tmp_path / "run"))
    train(config)
    out = tmp_path / "run"
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    evals = [r["eval"]["flow_loss"] for r in log if "eval" in r]
    assert evals[-1] < evals[0]  # step 0 vs the end, held-out worlds, same noise
    assert {"train_images", "eval_images"} <= {k for r in log for k in r}
    report = json.loads((out / "prompt_eval.json").read_text())
    assert {"ground_truth", "reconstructed", "chance_other_caption", "majority", "generated@3"} <= set(report)
    assert 0 <= report["generated@3"]["objects_f1"] <= 1
    assert (out / "prompt_samples.png").is_file() and (out / "judge" / "config.json").is_file()
    model = TextToImageModel.from_pretrained(out / "model")
    assert model.config.latent_height == 4 and model.config.latent_std != [1.0] * 16
