"""Training on real photos without labels (issue 21): the tokenizer's decoder on photo pseudo-videos with the
encoder frozen, SDG on a photo folder with augmented views, the 3DGS decoder on worlds and photos mixed."""

import json
import math

import pytest
import torch

from lyra3d.errors import InputError


@pytest.fixture
def photo_folder(tmp_path, photo_image, save_png):
    """Five training photos and one held-out photo (which nothing that trains may read), with a manifest."""
    folder = tmp_path / "photos"
    folder.mkdir()
    entries, base = [], photo_image(140, 64)
    for i in range(6):
        img = base[..., :96 + 8 * i].roll(7 * i, dims=-1)
        save_png(img, folder / f"p{i}.png")
        entries.append({"file": f"p{i}.png", "split": "heldout" if i == 2 else "tune"})
    (folder / "manifest.json").write_text(json.dumps({"photos": entries}))
    return folder


def test_tokenizer_decoder_fine_tune_on_photos_keeps_the_encoder(tmp_path, photo_folder):
    from lyra3d.models.tokenizer import TokenizerConfig, VideoTokenizer
    from lyra3d.train.tokenizer import TokenizerTrainConfig, encoder_parameter_names, train

    torch.manual_seed(0)
    init = tmp_path / "start"
    VideoTokenizer(TokenizerConfig(base_channels=8)).save_pretrained(init)  # the tokenizer to fine-tune
    cfg = TokenizerTrainConfig.tiny(str(tmp_path / "ft"))
    cfg.init_from, cfg.photos, cfg.photo_fraction, cfg.freeze_encoder = str(init), str(photo_folder), 0.5, True
    cfg.steps, cfg.photo_val, cfg.photo_eval_clips, cfg.num_worlds, cfg.device = 4, 1, 2, 1, "cpu"
    metrics = train(cfg)
    assert {"psnr", "ssim", "photo_psnr", "photo_ssim"} <= set(metrics)
    assert all(math.isfinite(v) for v in metrics.values())
    before = VideoTokenizer.from_pretrained(init)
    after = VideoTokenizer.from_pretrained(tmp_path / "ft" / "model")
    names = set(encoder_parameter_names(before))
    assert names and all(n.startswith(("enc.", "enc_first.", "enc_group.")) for n in names)
    b, a = dict(before.named_parameters()), dict(after.named_parameters())
    assert all(torch.equal(b[n], a[n]) for n in names)  # the latent space is untouched
    assert any(not torch.equal(b[n], a[n]) for n in b if n not in names)  # the decoder learned
    log = [json.loads(line) for line in (tmp_path / "ft" / "train_log.jsonl").read_text().splitlines()]
    first = next(e for e in log if "train_photos" in e)
    assert first["train_photos"] == 4 and first["photo_eval_clips"] == 2  # 5 tune photos, the last one evaluated
    assert first["trainable"] < first["parameters"]
    # resuming the run without --freeze-encoder would train other parameters: a one-line error
    cfg.freeze_encoder, cfg.steps = False, 8
    with pytest.raises(InputError, match="freeze-encoder"):
        train(cfg)


def test_too_few_training_photos_is_an_input_error(tmp_path, photo_folder):
    from lyra3d.train.tokenizer import TokenizerTrainConfig, train

    cfg = TokenizerTrainConfig.tiny(str(tmp_path / "run"))
    cfg.photos, cfg.photo_val, cfg.device = str(photo_folder), 5, "cpu"
    with pytest.raises(InputError, match="holds 5 training photos"):
        train(cfg)
    assert not (tmp_path / "run").exists()


def test_sdg_on_a_photo_folder_with_augmented_views(tmp_path, photo_folder):
    from lyra3d.data.sdg import generate, image_inputs, load_sample, sample_dirs
    from lyra3d.pipelines.teacher import Teacher, TeacherConfig

    inputs = list(image_inputs(photo_folder, 128, 64, augment=2, split="tune"))
    assert [i.id for i in inputs][:4] == ["p0", "p0_aug01", "p1", "p1_aug01"]
    assert len(inputs) == 10 and not any(i.id.startswith("p2") for i in inputs)  # the held-out photo stays out
    again = list(image_inputs(photo_folder, 128, 64, augment=2, split="tune"))
    assert torch.equal(inputs[1].image, again[1].image)  # the same views on a rerun or another shard
    assert not torch.equal(inputs[0].image, inputs[1].image)
    teacher = Teacher.from_pretrained(config=TeacherConfig(num_frames=5, steps=1, trajectories=("left",)))
    out = tmp_path / "sdg"
    assert generate(teacher, inputs[:2], out, size=(128, 64)) == 2
    dirs = sample_dirs(out)
    assert [d.name for d in dirs] == ["p0", "p0_aug01"]
    s = load_sample(dirs[1])
    assert s.frames.shape == (1, 5, 3, 64, 128) and s.latents.shape == (1, 2, 16, 8, 16)
    with pytest.raises(InputError, match="split"):
        list(image_inputs(photo_folder, 128, 64, split="nope"))


def test_decoder_trains_on_two_folders_with_shares(tmp_path, write_sdg_folder):
    from lyra3d.train.decoder import DecoderTrainConfig, train

    worlds = write_sdg_folder(tmp_path / "worlds", [1, 2])
    photos = write_sdg_folder(tmp_path / "photos", [3, 4])
    cfg = DecoderTrainConfig.tiny(str(tmp_path / "run"))
    cfg.data, cfg.data_weights, cfg.device = f"{worlds},{photos}", "1,3", "cpu"
    metrics = train(cfg)
    assert {"val_psnr_vs_teacher", "val_psnr_vs_teacher_0", "val_psnr_vs_teacher_1"} <= set(metrics)
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    data = next(e for e in log if "train_samples" in e)
    assert data["samples_per_folder"] == [1, 1] and data["folder_weights"] == [0.25, 0.75]
    assert data["backend"] == "torch"
    bad = DecoderTrainConfig.tiny(str(tmp_path / "bad"))
    bad.data, bad.data_weights, bad.device = f"{worlds},{photos}", "1", "cpu"
    with pytest.raises(InputError, match="one non-negative number per --data folder"):
        train(bad)
