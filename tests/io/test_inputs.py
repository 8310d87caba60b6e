"""lyra3d.io.images (images, videos, prompts) and lyra3d.core.files.staged_dir, on real files written here."""

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lyra3d.core.files import staged_dir
from lyra3d.errors import InputError
from lyra3d.io import images as inputs
from lyra3d.io import video as video_io
from lyra3d.io.images import ImageInfo, load_image
from lyra3d.io.prompts import validate_prompt
from lyra3d.io.video import MAX_VIDEO_SIDE, load_video, write_video

W, H = 320, 176


def uniform(mode, size, color):
    return Image.new(mode, size, color)


def assert_one_line_error(excinfo, name):
    msg = str(excinfo.value)
    assert "\n" not in msg and name in msg, msg
    assert excinfo.value.exit_code == 2


# -- formats ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix, kwargs, tol", [
    (".png", {}, 1e-6), (".jpg", {"quality": 95}, 4 / 255), (".webp", {"lossless": True}, 1e-6),
    (".tif", {}, 1e-6), (".bmp", {}, 1e-6), (".gif", {}, 8 / 255),
])
def test_formats_decode_to_model_size(tmp_path, suffix, kwargs, tol):
    p = tmp_path / f"img{suffix}"
    uniform("RGB", (200, 150), (200, 100, 50)).save(p, **kwargs)
    x, info = load_image(p, W, H)
    assert x.shape == (3, H, W) and x.dtype == torch.float32
    assert 0 <= float(x.min()) and float(x.max()) <= 1
    want = torch.tensor([200, 100, 50]) / 255
    assert torch.allclose(x.mean(dim=(1, 2)), want, atol=tol)
    assert info.output_size == (W, H) and info.size == (200, 150) and info.fit == "crop"


def test_grayscale_8bit_and_1bit(tmp_path):
    p = tmp_path / "gray.png"
    uniform("L", (64, 64), 77).save(p)
    x, info = load_image(p, 32, 32)
    assert torch.allclose(x, torch.full((3, 32, 32), 77 / 255), atol=1e-6)
    assert info.mode == "L" and "grayscale to RGB" in info.conversions
    q = tmp_path / "bw.png"
    im = Image.new("1", (32, 32), 0)
    im.paste(1, (16, 0, 32, 32))
    im.save(q)
    x, info = load_image(q, 32, 32)
    assert info.bit_depth == 1 and float(x[:, :, :16].max()) == 0 and float(x[:, :, 16:].min()) == 1


def test_exif_orientation_6_rotates(tmp_path):
    # stored 64 wide x 32 high, red marker at the stored top-left; orientation 6 = turn 90° clockwise to view
    im = uniform("RGB", (64, 32), (0, 0, 255))
    im.paste((255, 0, 0), (0, 0, 16, 16))
    exif = Image.Exif()
    exif[0x0112] = 6
    p = tmp_path / "rotated.jpg"
    im.save(p, quality=95, exif=exif.tobytes())
    x, info = load_image(p, 32, 64)  # the upright aspect: no crop
    assert info.exif_orientation == 6 and info.exif_rotated
    assert info.size == (64, 32) and info.upright_size == (32, 64) and info.fit == "none"
    red = torch.tensor([1.0, 0, 0])[:, None, None]
    blue = torch.tensor([0, 0, 1.0])[:, None, None]
    top_right = x[:, 2:14, 18:30]  # the stored top-left corner is now the top-right
    top_left = x[:, 2:14, 2:14]
    assert (top_right - red).abs().mean() < 0.05
    assert (top_left - blue).abs().mean() < 0.05
    assert "EXIF orientation 6" in info.describe()


def test_rgba_composited_over_neutral_background(tmp_path):
    im = Image.new("RGBA", (64, 32), (255, 0, 0, 0))  # left: fully transparent red
    im.paste((0, 0, 255, 255), (32, 0, 64, 32))  # right: opaque blue
    p = tmp_path / "cutout.png"
    im.save(p)
    x, info = load_image(p, 64, 32)
    assert info.alpha_background == inputs.NEUTRAL_BACKGROUND
    assert torch.allclose(x[:, 16, 5], torch.tensor([0.5, 0.5, 0.5]), atol=1e-6)
    assert torch.allclose(x[:, 16, 60], torch.tensor([0.0, 0.0, 1.0]), atol=1e-6)
    x, info = load_image(p, 64, 32, background=(1, 1, 1))
    assert torch.allclose(x[:, 16, 5], torch.ones(3), atol=1e-6)
    # half transparent: a blend
    q = tmp_path / "half.png"
    Image.new("RGBA", (32, 32), (255, 255, 255, 128)).save(q)
    x, _ = load_image(q, 32, 32)
    a = 128 / 255
    assert abs(float(x.mean()) - (a + 0.5 * (1 - a))) < 0.01


def test_la_and_palette_transparency(tmp_path):
    p = tmp_path / "la.png"
    Image.new("LA", (32, 32), (200, 0)).save(p)
    x, info = load_image(p, 32, 32)
    assert info.alpha_background is not None and torch.allclose(x, torch.full_like(x, 0.5), atol=1e-6)
    q = tmp_path / "pal.gif"
    im = Image.new("P", (32, 32), 1)
    im.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    im.paste(0, (0, 0, 16, 32))
    im.save(q, transparency=0)
    x, info = load_image(q, 32, 32)
    assert info.alpha_background is not None
    assert torch.allclose(x[:, 5, 4], torch.full((3,), 0.5), atol=1e-6)
    assert torch.allclose(x[:, 5, 28], torch.tensor([1.0, 0, 0]), atol=1e-6)


def test_opaque_alpha_is_not_reported(tmp_path):
    p = tmp_path / "opaque.png"
    Image.new("RGBA", (32, 32), (10, 20, 30, 255)).save(p)
    _, info = load_image(p, 32, 32)
    assert info.alpha_background is None


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16bit_keeps_precision(tmp_path, suffix):
    a = np.full((32, 64), 1000, np.uint16)
    a[:, 32:] = 1001  # one 16-bit step: the same 8-bit value
    p = tmp_path / f"deep{suffix}"
    Image.fromarray(a).save(p)
    x, info = load_image(p, 64, 32)
    assert info.bit_depth == 16 and info.mode.startswith("I;16")
    assert abs(float(x[0, 10, 10]) - 1000 / 65535) < 1e-6
    assert abs(float(x[0, 10, 50]) - 1001 / 65535) < 1e-6


def test_float_tiff(tmp_path):
    a = np.linspace(0, 1, 64 * 32, dtype=np.float32).reshape(32, 64)
    p = tmp_path / "float.tif"
    Image.fromarray(a).save(p)
    x, info = load_image(p, 64, 32)
    assert info.mode == "F" and torch.allclose(x[1], torch.from_numpy(a), atol=1e-6)
    q = tmp_path / "hdr.tif"
    Image.fromarray(a * 10 - 2).save(q)  # outside [0, 1]: rescaled, and said so
    x, info = load_image(q, 64, 32)
    assert float(x.min()) == 0 and abs(float(x.max()) - 1) < 1e-6
    assert any("rescaled" in c for c in info.conversions)
    b = a.copy()
    b[3, 3] = np.nan
    r = tmp_path / "nan.tif"
    Image.fromarray(b).save(r)
    with pytest.raises(InputError) as e:
        load_image(r, 64, 32)
    assert_one_line_error(e, "nan.tif")


@pytest.mark.parametrize("suffix", [".jpg", ".tif"])
def test_cmyk_converts(tmp_path, suffix):
    p = tmp_path / f"print{suffix}"
    Image.new("CMYK", (64, 32), (0, 255, 255, 0)).save(p)  # pure magenta + yellow ink = red
    x, info = load_image(p, 64, 32)
    assert info.mode == "CMYK" and any("CMYK" in c for c in info.conversions)
    assert torch.allclose(x.mean(dim=(1, 2)), torch.tensor([1.0, 0, 0]), atol=0.03)


def test_srgb_profile_left_alone(tmp_path):
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    p = tmp_path / "tagged.png"
    Image.new("RGB", (32, 32), (10, 120, 230)).save(p, icc_profile=icc)
    x, info = load_image(p, 32, 32)
    assert torch.allclose(x[:, 0, 0], torch.tensor([10, 120, 230]) / 255, atol=1e-6)
    assert not any("profile" in c for c in info.conversions)


def test_multiframe_uses_first(tmp_path):
    p = tmp_path / "anim.gif"
    frames = [Image.new("RGB", (32, 32), c) for c in ((255, 0, 0), (0, 255, 0))]
    frames[0].save(p, save_all=True, append_images=frames[1:], duration=100)
    x, info = load_image(p, 32, 32)
    assert info.frames == 2 and float(x[0].mean()) > 0.9


# -- geometry --------------------------------------------------------------------------------------------
def striped(w, h):
    """Red left third, green middle, blue right third; a white centre dot."""
    im = Image.new("RGB", (w, h), (0, 255, 0))
    im.paste((255, 0, 0), (0, 0, w // 3, h))
    im.paste((0, 0, 255), (w - w // 3, 0, w, h))
    return im


def test_crop_geometry_wide_and_tall(tmp_path):
    p = tmp_path / "wide.png"
    striped(400, 100).save(p)
    x, info = load_image(p, W, H, "crop")
    assert info.fit == "crop" and info.box == (109, 0, 291, 100)  # 182 = round(100 * 320 / 176)
    assert info.scale == pytest.approx(320 / 182, rel=1e-5)
    # only the middle is kept: the output's centre is green; the crop box lies inside the red/blue edges
    assert float(x[1, 88, 160]) > 0.99 and float(x[0, 88, 5]) > 0.99 and float(x[2, 88, 315]) > 0.99
    q = tmp_path / "tall.png"
    Image.new("RGB", (100, 400), (9, 9, 9)).save(q)
    _, info = load_image(q, W, H, "crop")
    assert info.box == (0, 172, 100, 227)  # 55 = round(100 * 176 / 320)


def test_pad_geometry_wide_and_tall(tmp_path):
    p = tmp_path / "wide.png"
    striped(400, 100).save(p)
    x, info = load_image(p, W, H, "pad")
    assert info.fit == "pad" and info.box == (0, -60, 400, 160)  # 220 = round(400 * 176 / 320)
    assert info.scale == pytest.approx(0.8)
    # the padding (top and bottom bands of 48 px) has the mean colour of the top and bottom rows
    pad = torch.tensor(info.pad_color)
    assert torch.allclose(x[:, 0, :], pad[:, None], atol=1e-4) and torch.allclose(x[:, -1, :], pad[:, None], atol=1e-4)
    assert torch.allclose(pad, torch.tensor([1 / 3, 1 / 3 + 0.005, 1 / 3]), atol=0.02)
    assert float(x[1, 88, 160]) > 0.99  # the image itself is whole and centred
    assert float(x[0, 88, 2]) > 0.99 and float(x[2, 88, 317]) > 0.99
    q = tmp_path / "tall.png"
    Image.new("RGB", (100, 400), (0, 0, 255)).save(q)
    x, info = load_image(q, W, H, "pad")
    assert info.box == (-313, 0, 414, 400)  # 727 = round(400 * 320 / 176)
    assert torch.allclose(torch.tensor(info.pad_color), torch.tensor([0.0, 0, 1]), atol=1e-4)
    assert "padded" in info.describe()


def test_same_aspect_is_not_cropped(tmp_path):
    p = tmp_path / "same.png"
    Image.new("RGB", (640, 352), (1, 2, 3)).save(p)
    _, info = load_image(p, W, H, "crop")
    assert info.fit == "none" and info.box == (0, 0, 640, 352) and info.scale == 0.5


def test_large_jpeg_uses_reduced_decoding(tmp_path):
    p = tmp_path / "big.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (2000, 3000, 3), dtype=np.uint8)).save(p)
    x, info = load_image(p, W, H)
    assert x.shape == (3, H, W) and info.box == (0, 175, 3000, 1825)
    assert any("JPEG DCT" in c for c in info.conversions)


def test_info_round_trips_to_dict(tmp_path):
    p = tmp_path / "a.png"
    Image.new("RGB", (64, 64), (0, 0, 0)).save(p)
    _, info = load_image(p, W, H)
    assert isinstance(info, ImageInfo) and info.to_dict()["box"] == info.box


# -- bad inputs ------------------------------------------------------------------------------------------
def bad_files(tmp_path):
    good = tmp_path / "good.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(good)
    data = good.read_bytes()
    (tmp_path / "truncated.png").write_bytes(data[: len(data) // 2])
    jpg = tmp_path / "good.jpg"
    Image.fromarray(np.random.default_rng(2).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(jpg)
    j = jpg.read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(j[: len(j) // 2])
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "notes.png").write_text("this is not an image\n")
    (tmp_path / "garbage.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4)
    Image.new("RGB", (1, 1)).save(tmp_path / "dot.png")
    Image.new("RGB", (8, 200)).save(tmp_path / "sliver.png")
    (tmp_path / "folder.png").mkdir()
    (tmp_path / "phone.heic").write_bytes(b"\x00\x00\x00\x18ftypheic" + bytes(64))
    return ["missing.png", "truncated.png", "truncated.jpg", "empty.png", "notes.png", "garbage.jpg",
            "dot.png", "sliver.png", "folder.png", "phone.heic"]


def test_bad_images_give_one_line_errors(tmp_path):
    for name in bad_files(tmp_path):
        with pytest.raises(InputError) as e:
            load_image(tmp_path / name, W, H)
        assert_one_line_error(e, name)
        msg = str(e.value)
        if name == "notes.png":
            assert "not an image" in msg and "PNG, JPEG, WebP or TIFF" in msg
        if name == "dot.png":
            assert "1×1" in msg and "too small" in msg
        if name == "empty.png":
            assert "empty" in msg
        if name == "phone.heic":
            assert "HEIC" in msg
        if name.startswith("truncated"):
            assert "truncated" in msg


def test_too_many_pixels(tmp_path, monkeypatch):
    p = tmp_path / "huge.png"
    Image.new("RGB", (100, 100)).save(p)
    monkeypatch.setattr(inputs, "MAX_IMAGE_PIXELS", 5000)
    with pytest.raises(InputError) as e:
        load_image(p, W, H)
    assert_one_line_error(e, "huge.png")


def test_bad_arguments(tmp_path):
    p = tmp_path / "a.png"
    Image.new("RGB", (64, 64)).save(p)
    for kwargs in ({"fit": "stretch"}, {"background": (2, 0, 0)}):
        with pytest.raises(InputError):
            load_image(p, W, H, **kwargs)
    with pytest.raises(InputError):
        load_image(p, 0, H)


def test_validate_prompt():
    assert validate_prompt("  a cat\n on  a sofa \t") == "a cat on a sofa"
    for bad in ("", "   \n\t", None):
        with pytest.raises(InputError) as e:
            validate_prompt(bad)
        assert "\n" not in str(e.value) and "prompt" in str(e.value)


# -- staged_dir ------------------------------------------------------------------------------------------
def test_staged_dir_success_renames(tmp_path):
    out = tmp_path / "scene"
    with staged_dir(out) as tmp:
        assert tmp.parent == tmp_path and tmp != out and not out.exists()
        (tmp / "scene.ply").write_text("ply")
    assert (out / "scene.ply").read_text() == "ply"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene"]


def test_staged_dir_exception_leaves_nothing(tmp_path):
    out = tmp_path / "deep" / "er" / "scene"
    with pytest.raises(RuntimeError):
        with staged_dir(out) as tmp:
            (tmp / "half.ply").write_text("ha")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []  # not even the parent folders it made


def test_staged_dir_refuses_existing_without_force(tmp_path):
    out = tmp_path / "scene"
    out.mkdir()
    (out / "old.txt").write_text("old")
    (out / "report.json").write_text("{}")  # a folder lyra3d wrote: --force may replace it
    with pytest.raises(InputError) as e:
        with staged_dir(out):
            pytest.fail("the body must not run")
    assert "--force" in str(e.value) and "scene" in str(e.value)
    # with force: the old one stays until the new one is complete...
    with pytest.raises(RuntimeError):
        with staged_dir(out, force=True) as tmp:
            (tmp / "new.txt").write_text("new")
            raise RuntimeError
    assert (out / "old.txt").read_text() == "old"
    # ...and is replaced then
    with staged_dir(out, force=True) as tmp:
        (tmp / "new.txt").write_text("new")
        assert (out / "old.txt").exists()
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene"]


# -- videos ----------------------------------------------------------------------------------------------
def colour_frames(t, h=48, w=64):
    v = torch.zeros(t, 3, h, w)
    for i in range(t):
        v[i, i % 3] = 0.9
    return v


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_video_reads_back(tmp_path, suffix):
    p = write_video(colour_frames(6), tmp_path / f"clip{suffix}", fps=12)
    v, info = load_video(p, 32, 24)
    assert v.shape == (6, 3, 24, 32) and v.dtype == torch.float32
    assert info.frames == 6 and info.size == (64, 48) and info.fps == pytest.approx(12, rel=0.05)
    for i in range(6):  # the colour of each frame survives (lossy codecs: loose tolerance)
        assert int(v[i].mean(dim=(1, 2)).argmax()) == i % 3
    v, info = load_video(p, 32, 24, max_frames=3)
    assert v.shape[0] == 3 and info.truncated


def test_video_crop_and_pad(tmp_path):
    p = write_video(colour_frames(3, 48, 96), tmp_path / "wide.gif")
    v, info = load_video(p, 64, 48, fit="crop")
    assert info.box == (16, 0, 80, 48) and v.shape == (3, 3, 48, 64)
    v, info = load_video(p, 64, 48, fit="pad")
    assert info.box == (0, -12, 96, 60) and info.fit == "pad"
    # every frame is padded with the first frame's edge colour (no flicker), though the frames differ
    assert torch.allclose(v[:, :, 0, 0], torch.tensor(info.pad_color).expand(3, 3), atol=1e-4)
    assert not torch.allclose(v[0, :, 24, 32], v[1, :, 24, 32], atol=0.1)


def test_video_folder_of_frames(tmp_path):
    d = tmp_path / "frames"
    d.mkdir()
    for i in range(3):
        Image.new("RGB", (64, 48), (255 * (i == 0), 255 * (i == 1), 255 * (i == 2))).save(d / f"{i:03d}.png")
    v, info = load_video(d, 32, 24)
    assert v.shape == (3, 3, 24, 32) and info.format == "frames"
    assert [int(v[i].mean(dim=(1, 2)).argmax()) for i in range(3)] == [0, 1, 2]
    Image.new("RGB", (80, 48)).save(d / "003.png")
    with pytest.raises(InputError) as e:
        load_video(d, 32, 24)
    assert_one_line_error(e, "003.png")


def ffmpeg(*args):
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", *map(str, args)], check=True)


def test_bad_videos(tmp_path):
    one_mp4 = write_video(colour_frames(1), tmp_path / "one.mp4")
    one_gif = write_video(colour_frames(1), tmp_path / "one.gif")
    Image.new("RGB", (64, 48)).save(tmp_path / "still.png")
    ffmpeg("-f", "lavfi", "-i", "color=c=red:s=64x48:d=1", "-frames:v", "0", tmp_path / "zero.mp4")
    good = write_video(colour_frames(8), tmp_path / "good.mp4").read_bytes()
    (tmp_path / "truncated.mp4").write_bytes(good[: len(good) // 2])
    (tmp_path / "notes.mp4").write_text("not a video")
    (tmp_path / "empty.mp4").write_bytes(b"")
    for name in ("one.mp4", "one.gif", "still.png"):
        with pytest.raises(InputError) as e:
            load_video(tmp_path / name, 32, 24)
        assert_one_line_error(e, name)
        assert "at least 2 frames" in str(e.value) and "--image" in str(e.value)
    for name, words in (("zero.mp4", "no video frames"), ("truncated.mp4", "not a readable video"),
                        ("notes.mp4", "not a readable video"), ("empty.mp4", "empty"),
                        ("missing.mp4", "not found")):
        with pytest.raises(InputError) as e:
            load_video(tmp_path / name, 32, 24)
        assert_one_line_error(e, name)
        assert words in str(e.value)
    assert one_mp4.exists() and one_gif.exists()


def test_huge_video_refused_before_decoding(tmp_path, monkeypatch):
    big = tmp_path / "huge.gif"  # a real one: 9000 px wide (GIF compresses a flat colour to almost nothing)
    frames = [Image.new("P", (9000, 16), i) for i in range(2)]
    frames[0].save(big, save_all=True, append_images=frames[1:])
    with pytest.raises(InputError) as e:
        load_video(big, 32, 24)
    assert_one_line_error(e, "huge.gif")
    assert str(MAX_VIDEO_SIDE) in str(e.value)
    # through ffmpeg: the limit is checked on the header; no frame is decoded
    p = write_video(colour_frames(3), tmp_path / "clip.mp4")
    monkeypatch.setattr(video_io, "MAX_VIDEO_SIDE", 48)
    monkeypatch.setattr(video_io, "_render_fit", lambda *a, **k: pytest.fail("decoded a frame"))
    with pytest.raises(InputError) as e:
        load_video(p, 32, 24)
    assert_one_line_error(e, "clip.mp4")


def test_too_long_video_needs_max_frames(tmp_path, monkeypatch):
    p = write_video(colour_frames(5), tmp_path / "long.gif")
    monkeypatch.setattr(video_io, "MAX_VIDEO_FRAMES", 3)
    with pytest.raises(InputError) as e:
        load_video(p, 32, 24)
    assert_one_line_error(e, "long.gif")
    assert load_video(p, 32, 24, max_frames=3)[0].shape[0] == 3
    q = write_video(colour_frames(5), tmp_path / "long.mp4")
    with pytest.raises(InputError):
        load_video(q, 32, 24)


def test_example_inputs_load_and_are_documented():
    folder = Path(__file__).resolve().parents[2] / "examples" / "inputs"
    captions = json.loads((folder / "captions.json").read_text())
    licenses = (folder / "LICENSES.md").read_text()
    images = sorted(p for p in folder.iterdir() if p.suffix in (".png", ".jpg"))
    assert sum(p.stat().st_size for p in folder.iterdir()) < 1_000_000
    assert len(captions) == 3 and all(v["seed"] >= 1_000_000 and v["caption"] for v in captions.values())
    for p in images:
        assert p.name in captions or p.name in licenses, p.name
        x, info = load_image(p, W, H)
        assert x.shape == (3, H, W) and info.size[0] <= 640
