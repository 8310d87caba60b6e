"""Collect real photographs from installed packages into one folder, with a manifest (issue 21).

    apt-get install mate-backgrounds plasma-workspace-wallpapers lomiri-wallpapers  # Debian packages
    python examples/real_photos.py --out photos                    # -> photos/*.png + photos/manifest.json
    python examples/real_photos.py --out photos --split heldout    # only the held-out split
    python examples/real_photos.py --out .photos --format jpg      # JPEG (quality 92): ~6x smaller, to carry

No image is stored in the repository: the photos are read from where the packages install them
(``/usr/share/backgrounds/mate/nature``, ``/usr/share/wallpapers/<name>/contents/images``, scikit-image's
``skimage/data``, Ubuntu Touch's ``/usr/share/backgrounds``), converted to RGB, resized so the longer side is
at most 640 px (Lanczos) and written as PNG (or JPEG). Only photographs are listed (no vector art or renders), each with its package, file, author and
licence as the package states them (Debian ``copyright`` files, the KDE wallpapers' ``metadata.json``,
scikit-image's ``skimage/data/_fetchers.py`` docstrings). A photo whose package is not installed is skipped
and named, with the command that installs it.

Splits (fixed here, never drawn at random): ``heldout`` photos are only ever evaluated (no training and no
tuning of any setting may read them, as the procedural seeds >= 1,000,000); ``tune`` photos may be used to
choose settings or to train.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from pathlib import Path

MAX_SIDE = 640

MATE = "/usr/share/backgrounds/mate/nature"
KDE = "/usr/share/wallpapers"
MATE_LICENCE = "GPL-2+ (Debian copyright of mate-backgrounds 1.26.0-1)"
KDE_LICENCE = "LGPL-3 (the wallpaper's metadata.json); GPL-2+ (Debian copyright of plasma-workspace-wallpapers)"
LOMIRI = "/usr/share/backgrounds"
LOMIRI_COPYRIGHT = "Debian copyright of lomiri-wallpapers 20.04.0-2"


@dataclass(frozen=True)
class Photo:
    name: str
    package: str  # Debian package, or the Python package for scikit-image
    path: str  # where the package installs it (scikit-image: relative to its data folder)
    author: str
    licence: str
    split: str  # "heldout" or "tune"
    what: str


def _mate(stem: str, author: str, split: str, what: str) -> Photo:
    return Photo(f"mate_{stem.lower()}", "mate-backgrounds", f"{MATE}/{stem}.jpg", author, MATE_LICENCE, split, what)


def _kde(stem: str, author: str, split: str, what: str, size: str = "1920x1080.jpg") -> Photo:
    return Photo(f"kde_{stem.lower()}", "plasma-workspace-wallpapers", f"{KDE}/{stem}/contents/images/{size}", author,
                 KDE_LICENCE, split, what)


def _lomiri(file: str, author: str, licence: str, what: str, release: str = "16.04") -> Photo:
    """A photo of Ubuntu Touch's wallpapers (``apt-get install lomiri-wallpapers`` installs both releases'
    packages); training only (``tune``): they came after the held-out list was fixed."""
    stem = file.rsplit(".", 1)[0].split("_by_")[0].lower().replace("-", "_")
    return Photo(f"lomiri_{stem}", f"lomiri-wallpapers-{release}", f"{LOMIRI}/{file}", author,
                 f"{licence} ({LOMIRI_COPYRIGHT})", "tune", what)


def _skimage(stem: str, file: str, author: str, licence: str, split: str, what: str) -> Photo:
    return Photo(f"skimage_{stem}", "scikit-image", file, author, licence, split, what)


#: Every photograph, in a fixed order. The held-out list is fixed: 13 photos, about half of each source.
PHOTOS: tuple[Photo, ...] = (
    _skimage("astronaut", "astronaut.png", "NASA", "public domain (a work of NASA; scikit-image: 'No known copyright "
             "restrictions, released into the public domain')", "heldout", "astronaut portrait, flag"),
    _skimage("coffee", "coffee.png", "Rachel Michetti", "CC0 ('No copyright restrictions. CC0 by the photographer')",
             "heldout", "coffee cup on a table"),
    _skimage("chelsea", "chelsea.png", "Stefan van der Walt",
             "CC0 ('No copyright restrictions. CC0 by the photographer')", "tune", "a cat"),
    _skimage("rocket", "rocket.jpg", "SpaceX", "public domain (released into the public domain by SpaceX)", "tune",
             "rocket launch"),
    _mate("Dune", "Marco Cogoni, Hylke Bons", "heldout", "dune grass, sea"),
    _mate("Garden", "Charles Barbin", "heldout", "flower, blurred garden"),
    _mate("LadyBird", "Charles Barbin", "heldout", "ladybird on a stem, flowers"),
    _mate("Storm", "Sergey Nazarov", "heldout", "road under a storm sky"),
    _mate("Wood", "Jean-Francois Fortin Tam", "heldout", "wooden boards"),
    _mate("YellowFlower", "Charles Barbin", "heldout", "yellow flower close-up"),
    _mate("Aqua", "Charles Barbin", "tune", "water drop splash"),
    _mate("Blinds", "Lennart Poettering, Andrea Cimitan", "tune", "leaf close-up"),
    _mate("FreshFlower", "Jens Ansorg", "tune", "orange flower"),
    _mate("GreenMeadow", "Timothy Schellhase, Lapo Calamandrei", "tune", "grass"),
    _mate("RainDrops", "blackcombwhistler07", "tune", "rain drops on leaves"),
    _mate("TwoWings", "Charles Barbin, Hylke Bons", "tune", "dandelion seeds"),
    _kde("BytheWater", "Maciej Wiklo", "heldout", "wooden pier by a lake"),
    _kde("EveningGlow", "Ian Hex", "heldout", "rowing boats on a shore at sunset"),
    _kde("Grey", "Sigi Sagi", "heldout", "building facade"),
    _kde("Path", "Risto Saukonpaa", "heldout", "forest path"),
    _kde("summer_1am", "Risto Saukonpaa", "heldout", "lake at dusk"),
    _kde("ColdRipple", "Risto Saukonpaa", "tune", "jetty in fog"),
    _kde("ColorfulCups", "Dmitri Popov", "tune", "stacked cups", "2560x1600.jpg"),
    _kde("DarkestHour", "Risto Saukonpaa", "tune", "misty lake at night"),
    _kde("FallenLeaf", "Martin Klapetek", "tune", "fallen leaf"),
    _kde("Kite", "Risto Saukonpaa", "tune", "kite in a cloudy sky"),
    _kde("OneStandsOut", "Risto Saukonpaa", "tune", "moss"),
    # added for training (issue 21 part 2): all "tune"; the held-out list above is unchanged
    _lomiri("aitzgorri_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi", "CC-BY-4.0", "mountain above autumn trees"),
    _lomiri("Bridge_by_Sander_Klootwijk.jpg", "Sander Klootwijk", "CC-BY-SA-4.0", "bridge cables over a beach"),
    _lomiri("Dragonfly_by_Bolly.jpg", "Bolly", "CC-BY-SA-4.0", "leaves against a blue sky"),
    _lomiri("free_by_Peter_Nerlich.jpg", "Peter Nerlich", "CC-BY-SA-4.0", "toy bird under ceiling lamps"),
    _lomiri("friends_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi", "CC-BY-4.0", "dog at a window"),
    _lomiri("life_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi", "CC-BY-4.0", "stream in a forest"),
    _lomiri("picosdeeuropa_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi", "CC-BY-4.0", "path below mountains"),
    _lomiri("Picture_0B_by_freespace.jpg", "Trevor \"Freespace\"", "CC-BY-4.0", "fig in a red bowl"),
    _lomiri("Picture_1A_by_freespace.jpg", "Trevor \"Freespace\"", "CC-BY-4.0", "paint brushes"),
    _lomiri("seeding_by_Clements_Engelhardt.jpg", "Clemens Engelhardt", "CC0-1.0", "dandelions at sunset"),
    _lomiri("sunset_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi", "CC-BY-4.0", "sun over a hilltop"),
    _lomiri("Wine_by_Jakkub_Mede.jpg", "Jakub Mede", "CC-BY-4.0", "wine bottle on a table"),
    _lomiri("Kleiber_by_Lukas_Baubkus.jpg", "Lukas Baubkus", "CC-BY-SA-3.0", "nuthatch on a tree trunk", "20.04"),
)

SPLITS = ("heldout", "tune")


def heldout_names() -> list[str]:
    """The names of the held-out photos (only ever evaluated)."""
    return [p.name for p in PHOTOS if p.split == "heldout"]


def source_file(photo: Photo) -> Path:
    """Where ``photo`` lies on this machine (scikit-image's data folder for its photos)."""
    if photo.package == "scikit-image":
        import skimage

        return Path(skimage.__file__).parent / "data" / photo.path
    return Path(photo.path)


def collect(out: Path, split: str | None = None, fmt: str = "png", quality: int = 92) -> tuple[list[dict], list[str]]:
    """Write the photos (of ``split``, or all) to ``out`` as PNG (or JPEG of ``quality``: ``fmt="jpg"``) and
    ``out/manifest.json``; returns the manifest entries and the packages that are missing."""
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    entries, missing = [], []
    for photo in PHOTOS:
        if split is not None and photo.split != split:
            continue
        try:
            src = source_file(photo)
        except ImportError:
            src = None
        if src is None or not src.is_file():
            missing.append(photo.package)
            continue
        with Image.open(src) as im:
            im = im.convert("RGB")
            size = im.size
            scale = MAX_SIDE / max(im.size)
            if scale < 1:
                im = im.resize((round(im.width * scale), round(im.height * scale)), Image.Resampling.LANCZOS)
            if fmt == "jpg":
                im.save(out / f"{photo.name}.jpg", quality=quality, optimize=True)
            else:
                im.save(out / f"{photo.name}.png", optimize=True)
        entries.append({**asdict(photo), "file": f"{photo.name}.{fmt}", "source": str(src),
                        "source_size": list(size), "size": [im.width, im.height]})
    (out / "manifest.json").write_text(json.dumps({"max_side": MAX_SIDE, "photos": entries}, indent=1) + "\n")
    return entries, sorted(set(missing))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("photos"))
    ap.add_argument("--split", choices=SPLITS, default=None, help="only this split (default: all)")
    ap.add_argument("--format", choices=("png", "jpg"), default="png", help="file format (jpg: quality 92)")
    args = ap.parse_args()
    entries, missing = collect(args.out, args.split, args.format)
    for split in SPLITS:
        n = sum(e["split"] == split for e in entries)
        print(f"{split}: {n} photos")
    by_package: dict[str, int] = {}
    for e in entries:
        by_package[e["package"]] = by_package.get(e["package"], 0) + 1
    for package, n in by_package.items():
        print(f"  {package}: {n}")
    if missing:
        debs = [m for m in missing if m != "scikit-image"]
        print(f"missing (not installed): {', '.join(missing)}"
              + (f"; install with: apt-get install {' '.join(debs)}" if debs else "")
              + ("; pip install scikit-image" if "scikit-image" in missing else ""))
    print(f"wrote {len(entries)} photos and manifest.json to {args.out}")


if __name__ == "__main__":
    main()
