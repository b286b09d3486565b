"""Checks GeoJSON files with shapely (GEOS): RFC 7946 as receivers' GIS tools read it.

For each file (a FeatureCollection or a single Feature) every geometry must be valid
(`is_valid`), every polygon ring closed as written and every exterior ring
counter-clockwise; feature ids must be present and unique within a file. Prints one JSON
object: {"files": {path: {"ok": bool, "problems": [...], "polygons": n, "features": n}},
"control": {...}}. The control is the first polygon of the first file written clockwise:
it must be flagged, which shows the orientation check really runs.
"""
import json
import sys

from shapely.geometry import shape


def polygons(geom):
    t = geom.get("type")
    if t == "Polygon":
        yield geom["coordinates"]
    elif t == "MultiPolygon":
        yield from geom["coordinates"]
    elif t == "GeometryCollection":
        for g in geom["geometries"]:
            yield from polygons(g)


def check_features(features):
    problems, ids, n_poly = [], set(), 0
    for i, f in enumerate(features):
        fid = f.get("id")
        if fid is None:
            problems.append(f"feature {i}: no id")
        elif fid in ids:
            problems.append(f"feature {i}: duplicate id {fid!r}")
        ids.add(fid)
        g = f.get("geometry")
        if g is None:
            continue
        s = shape(g)
        if not s.is_valid:
            from shapely.validation import explain_validity
            problems.append(f"feature {fid}: invalid {g['type']}: {explain_validity(s)}")
        for rings in polygons(g):
            n_poly += 1
            for k, ring in enumerate(rings):
                if ring[0] != ring[-1]:
                    problems.append(f"feature {fid}: ring {k} not closed")
            p = shape({"type": "Polygon", "coordinates": rings})
            if not p.exterior.is_ccw:
                problems.append(f"feature {fid}: exterior ring clockwise")
            for hole in p.interiors:
                if hole.is_ccw:
                    problems.append(f"feature {fid}: hole counter-clockwise")
    return {"ok": not problems, "problems": problems, "polygons": n_poly,
            "features": len(features)}


def features_of(doc):
    if doc.get("type") == "FeatureCollection":
        return doc["features"]
    return [doc]


def main(paths):
    out = {"files": {}}
    first_polygon = None
    for p in paths:
        with open(p) as f:
            feats = features_of(json.load(f))
        out["files"][p] = check_features(feats)
        for f in feats:
            if first_polygon is None and f.get("geometry", {}) and f["geometry"]["type"] == "Polygon":
                first_polygon = f
    if first_polygon is not None:
        control = json.loads(json.dumps(first_polygon))
        control["geometry"]["coordinates"][0].reverse()
        out["control"] = check_features([control])
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1:])
