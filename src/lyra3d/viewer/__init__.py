"""``lyra3d view``: a web viewer (viser) for generated scenes, PLY/.splat/USD files and 4D folders."""

from lyra3d.viewer.server import Viewer, load_scene, serve, view

__all__ = ["Viewer", "load_scene", "serve", "view"]
