"""Procedural 3D worlds with exact ground truth: what lyra3d trains and evaluates on.

:mod:`~lyra3d.data.worlds.scene` describes a world (materials, primitives, sky, light, seeds) and samples one
from a seed (:func:`make_world`); :mod:`~lyra3d.data.worlds.raycast` renders it exactly (colour, depth,
normals, at any camera and time); :mod:`~lyra3d.data.worlds.captions` is the vocabulary of its captions.
"""

from lyra3d.data.worlds.captions import caption_vocabulary
from lyra3d.data.worlds.generate import make_world
from lyra3d.data.worlds.raycast import center_depth, render
from lyra3d.data.worlds.scene import (
                                      DYNAMIC_HORIZON,
                                      EVAL_SEED_START,
                                      PALETTE,
                                      SKIES,
                                      SKY_DEPTH,
                                      TEXTURES,
                                      TRAIN_SEEDS_END,
                                      Box,
                                      Cylinder,
                                      Light,
                                      Material,
                                      Motion,
                                      Object3D,
                                      Plane,
                                      Sky,
                                      Sphere,
                                      World,
                                      WorldRender,
                                      eval_seeds,
                                      is_eval_seed,
                                      train_seeds,
)

__all__ = ["DYNAMIC_HORIZON", "EVAL_SEED_START", "PALETTE", "SKIES", "SKY_DEPTH", "TEXTURES", "TRAIN_SEEDS_END", "Box",
           "Cylinder", "Light", "Material", "Motion", "Object3D", "Plane", "Sky", "Sphere", "World", "WorldRender",
           "caption_vocabulary", "center_depth", "eval_seeds", "is_eval_seed", "make_world", "render", "train_seeds"]
