"""Writes a PMTiles v3 archive with the third-party writer (PyPI `pmtiles`, the PMTiles
project's own Python package) from a directory of tiles named `z/x/y.<ext>`, for the
server's PMTiles tests.

usage: write_pmtiles.py TILES_DIR OUT [--tile-type png|jpeg|webp|mvt] [--gzip-tiles]
                        [--root-budget BYTES] [--attribution TEXT] [--synthetic MAXZOOM]

--root-budget lowers the writer's root-directory budget (16 KiB less the header by default)
so that a small archive still gets leaf directories, laid out by the writer's own
`build_roots_leaves`. --synthetic ignores TILES_DIR and writes a third of the tiles of
zooms 0..MAXZOOM (those with (7919 x + 104729 y + z) % 3 == 0), each the bytes `z/x/y`
followed by (31 x + 17 y) % 50 `#`: a large sparse archive with the writer's default
layout (not images). Prints a JSON summary (tiles, the header's sections).
"""

import argparse
import gzip
import json
import os

import pmtiles.writer as pw
from pmtiles.reader import MmapSource, Reader
from pmtiles.tile import Compression, TileType, deserialize_directory, zxy_to_tileid

ap = argparse.ArgumentParser()
ap.add_argument("tiles")
ap.add_argument("out")
ap.add_argument("--tile-type", default="png")
ap.add_argument("--gzip-tiles", action="store_true")
ap.add_argument("--root-budget", type=int)
ap.add_argument("--attribution")
ap.add_argument("--synthetic", type=int)
a = ap.parse_args()

if a.root_budget:
    original = pw.optimize_directories
    pw.optimize_directories = lambda entries, _budget: original(entries, a.root_budget)

tiles = []
for z in range(a.synthetic + 1) if a.synthetic is not None else []:
    for x in range(1 << z):
        for y in range(1 << z):
            if (7919 * x + 104729 * y + z) % 3 == 0:
                pad = "#" * ((31 * x + 17 * y) % 50)
                tiles.append((zxy_to_tileid(z, x, y), f"{z}/{x}/{y}{pad}".encode()))
for z in os.listdir(a.tiles) if a.synthetic is None else []:
    for x in os.listdir(os.path.join(a.tiles, z)):
        for name in os.listdir(os.path.join(a.tiles, z, x)):
            y = name.split(".")[0]
            tiles.append((zxy_to_tileid(int(z), int(x), int(y)), os.path.join(a.tiles, z, x, name)))
tiles.sort()

with pw.write(a.out) as w:
    for tile_id, src in tiles:
        data = src if isinstance(src, bytes) else open(src, "rb").read()
        w.write_tile(tile_id, gzip.compress(data, mtime=0) if a.gzip_tiles else data)
    header = {
        "tile_type": {"png": TileType.PNG, "jpeg": TileType.JPEG, "webp": TileType.WEBP, "mvt": TileType.MVT}[a.tile_type],
        "tile_compression": Compression.GZIP if a.gzip_tiles else Compression.NONE,
        "min_lon_e7": int(-180e7), "min_lat_e7": int(-85e7),
        "max_lon_e7": int(180e7), "max_lat_e7": int(85e7),
    }
    meta = {"name": "fixture"}
    if a.attribution:
        meta["attribution"] = a.attribution
    w.finalize(header, meta)

with open(a.out, "rb") as f:
    h = Reader(MmapSource(f)).header()
    f.seek(h["root_offset"])
    root = deserialize_directory(f.read(h["root_length"]))
    leaf_pointers = sum(1 for e in root if e.run_length == 0)
print(json.dumps({
    "tiles": len(tiles),
    "tile_entries": h["tile_entries_count"],
    "tile_contents": h["tile_contents_count"],
    "leaf_directory_length": h["leaf_directory_length"],
    "root_length": h["root_length"],
    "root_leaf_pointers": leaf_pointers,
}))
