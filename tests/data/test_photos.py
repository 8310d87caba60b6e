"""Real photos as label-free training data: the training split of a photo folder, pseudo-videos, random crops."""

import json

import pytest
import torch

from lyra3d.data.photos import crop_resize, pseudo_video, pseudo_video_boxes, random_crop, training_photo_paths
from lyra3d.errors import InputError


def _photo(width=200, height=120, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (3, height, width), generator=g, dtype=torch.uint8)


def test_pseudo_video_shapes_and_determinism_for_a_seed():
    photo = _photo()
    a = pseudo_video(photo, 9, 64, 32, torch.Generator().manual_seed(5))
    b = pseudo_video(photo, 9, 64, 32, torch.Generator().manual_seed(5))
    c = pseudo_video(photo, 9, 64, 32, torch.Generator().manual_seed(6))
    assert a.shape == (9, 3, 32, 64) and a.dtype == torch.float32
    assert 0 <= float(a.min()) and float(a.max()) <= 1
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert float((a[0] - a[-1]).abs().mean()) > 0.01  # the camera moved


def test_the_first_frame_is_the_photo_seen_through_the_first_box():
    photo = _photo()
    boxes = pseudo_video_boxes(200, 120, 5, 64, 32, torch.Generator().manual_seed(3))
    video = pseudo_video(photo, 5, 64, 32, torch.Generator().manual_seed(3), flip=False)
    assert torch.allclose(video[0], crop_resize(photo, boxes[:1], 64, 32)[0])
    # a box of exactly the output's size at whole pixels is the photo's own pixels
    x0, y0 = 17, 40
    crop = crop_resize(photo, torch.tensor([[x0, y0, 64.0, 32.0]]), 64, 32)[0]
    assert torch.allclose(crop, photo[:, y0:y0 + 32, x0:x0 + 64].float() / 255, atol=1e-5)
    # boxes stay inside the photo, and the motion eases in: the first step is the smallest
    assert (boxes[:, 0] >= -1e-4).all() and (boxes[:, 0] + boxes[:, 2] <= 200 + 1e-3).all()
    assert (boxes[:, 1] >= -1e-4).all() and (boxes[:, 1] + boxes[:, 3] <= 120 + 1e-3).all()
    steps = (boxes[1:] - boxes[:-1]).abs().sum(1)
    assert float(steps[0]) <= float(steps[1]) + 1e-6


def test_random_crop_and_mirror():
    photo = _photo()
    image, what = random_crop(photo, 64, 32, torch.Generator().manual_seed(1))
    assert image.shape == (3, 32, 64)
    x0, y0, w, h = what["box"]
    assert abs(w / h - 2.0) < 1e-3 and x0 >= 0 and y0 >= 0
    assert 0.6 * 200 - 1e-3 <= w <= 200 + 1e-3 and x0 + w <= 200 + 1e-3 and y0 + h <= 120 + 1e-3
    box = torch.tensor([what["box"]])
    assert torch.allclose(image, crop_resize(photo, box, 64, 32, what["flip"])[0], atol=2e-2)
    assert torch.allclose(crop_resize(photo, box, 64, 32, True)[0], crop_resize(photo, box, 64, 32)[0].flip(-1))


def test_training_reads_only_the_tune_split(tmp_path, save_png):
    for name in ("a", "b", "held"):
        save_png(_photo(seed=ord(name[0])).float() / 255, tmp_path / f"{name}.png")
    entries = [{"file": "a.png", "split": "tune"}, {"file": "held.png", "split": "heldout"},
               {"file": "b.png", "split": "tune"}]
    (tmp_path / "manifest.json").write_text(json.dumps({"photos": entries}))
    assert [p.name for p in training_photo_paths(tmp_path)] == ["a.png", "b.png"]
    (tmp_path / "manifest.json").unlink()  # a user's folder without a manifest: every image
    assert [p.name for p in training_photo_paths(tmp_path)] == ["a.png", "b.png", "held.png"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no training photo"):
        training_photo_paths(tmp_path / "empty")
