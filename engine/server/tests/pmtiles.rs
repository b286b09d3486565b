//! `[server.map] pmtiles`: archives written by the PMTiles project's own Python writer
//! (PyPI `pmtiles`, in the project venv) from PNG tiles generated here; the engine serves
//! every tile byte-identical (root and leaf directories, run lengths, gzip-compressed tiles),
//! and a vector-tile, truncated, damaged or missing archive is an error naming the file while
//! the map falls back and the rest of the server answers.

mod common;

use std::path::Path;

use common::*;
use lookout_server::pmtiles::{Archive, PmtilesError};

/// A solid 256×256 PNG whose colour encodes `z/x/y` (distinct for every tile of zooms
/// 0..=6: 5461 tiles).
fn tile_png(z: u32, x: u32, y: u32) -> Vec<u8> {
    let n = ((1u32 << (2 * z)) - 1) / 3 + y * (1 << z) + x;
    let img = image::RgbImage::from_pixel(
        256,
        256,
        image::Rgb([(n >> 16) as u8, (n >> 8) as u8, n as u8]),
    );
    let mut png = std::io::Cursor::new(Vec::new());
    img.write_to(&mut png, image::ImageFormat::Png).unwrap();
    png.into_inner()
}

/// The tiles: every tile of zooms 0..=6 in its own colour, and at zoom 7 the 8×8 block at
/// x, y in 64..72 all one PNG (the writer stores those as runs). Written as `z/x/y.png`.
fn write_tiles(dir: &Path) -> Vec<((u32, u32, u32), Vec<u8>)> {
    let mut tiles = Vec::new();
    for z in 0..=6u32 {
        for x in 0..(1 << z) {
            for y in 0..(1 << z) {
                tiles.push(((z, x, y), tile_png(z, x, y)));
            }
        }
    }
    let sea = tile_png(0, 0, 0);
    for x in 64..72 {
        for y in 64..72 {
            tiles.push(((7, x, y), sea.clone()));
        }
    }
    for ((z, x, y), png) in &tiles {
        let d = dir.join(format!("{z}/{x}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(format!("{y}.png")), png).unwrap();
    }
    tiles
}

/// Runs `tests/write_pmtiles.py` (the third-party writer) and returns its summary.
fn write_pmtiles(tiles: &Path, out: &Path, args: &[&str]) -> serde_json::Value {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let py = manifest.join("../../.venv/bin/python");
    let o = std::process::Command::new(&py)
        .arg(manifest.join("tests/write_pmtiles.py"))
        .arg(tiles)
        .arg(out)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/setup.sh)", py.display()));
    assert!(
        o.status.success(),
        "the pmtiles writer failed (run scripts/setup.sh, which installs it): {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

fn content_type(r: &Resp) -> String {
    r.headers
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type:")
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_default()
}

#[test]
fn engine_serves_every_tile_of_a_third_party_archive_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let tiles = write_tiles(&dir.path().join("tiles"));
    // Leaf directories: the writer's own layout with a 100-byte root budget (2 leaves of
    // at most 4096 entries); the tiles gzip-compressed in the second archive.
    let plain = write_pmtiles(
        &dir.path().join("tiles"),
        &dir.path().join("basemap.pmtiles"),
        &["--root-budget", "100", "--attribution", "Fixture PMTiles"],
    );
    assert_eq!(plain["tiles"], tiles.len(), "{plain}");
    assert!(
        plain["leaf_directory_length"].as_u64().unwrap() > 0,
        "{plain}"
    );
    // 5461 distinct tiles, and the zoom-7 block (aligned, so one stretch of the Hilbert
    // curve) one entry with a run of 64 pointing back at the zoom-0 tile's bytes.
    assert_eq!(plain["tile_entries"], 5462, "runs: {plain}");
    assert_eq!(plain["tile_contents"], 5461, "{plain}");
    let gz = write_pmtiles(
        &dir.path().join("tiles"),
        &dir.path().join("gz.pmtiles"),
        &["--gzip-tiles"],
    );
    assert_eq!(gz["leaf_directory_length"], 0, "{gz}");

    // The reader on its own: header, leaves, the bounded cache.
    let a = Archive::open(&dir.path().join("basemap.pmtiles")).unwrap();
    assert_eq!((a.header.min_zoom, a.header.max_zoom), (0, 7));
    assert_eq!(a.attribution.as_deref(), Some("Fixture PMTiles"));
    for ((z, x, y), png) in &tiles {
        let got = a.tile(*z as u8, *x, *y).unwrap();
        assert!(got.as_deref() == Some(png.as_slice()), "{z}/{x}/{y}");
    }
    assert!(
        (1..=64).contains(&a.cached_leaves()),
        "{}",
        a.cached_leaves()
    );
    assert_eq!(a.tile(7, 0, 0).unwrap(), None);
    assert_eq!(a.tile(7, 72, 64).unwrap(), None, "just past a run");
    assert_eq!(a.tile(8, 0, 0).unwrap(), None);

    for (file, attribution) in [("basemap.pmtiles", "Fixture PMTiles"), ("gz.pmtiles", "")] {
        let f = start_in(
            tempfile::tempdir_in(dir.path()).unwrap(),
            &format!("{CONFIG}\n[server.map]\npmtiles = \"../{file}\"\n"),
        );
        let info = http(f.addr, "GET", "/api/map", Some(VIEWER), None).json();
        assert_eq!(info["basemap"], "pmtiles", "{info}");
        assert_eq!(info["tile_url"], "/api/tiles/{z}/{x}/{y}", "{info}");
        assert_eq!(info["format"], "png", "{info}");
        assert_eq!(
            (info["min_zoom"].as_u64(), info["max_zoom"].as_u64()),
            (Some(0), Some(7))
        );
        assert_eq!(
            info["attribution"].as_str().unwrap_or(""),
            attribution,
            "{info}"
        );
        assert!(info["error"].is_null(), "{info}");
        for ((z, x, y), png) in &tiles {
            let r = http(
                f.addr,
                "GET",
                &format!("/api/tiles/{z}/{x}/{y}"),
                Some(VIEWER),
                None,
            );
            assert_eq!(r.status, 200, "{file} {z}/{x}/{y}: {}", r.text());
            assert_eq!(content_type(&r), "image/png", "{file} {z}/{x}/{y}");
            assert!(
                r.body == *png,
                "{file} {z}/{x}/{y}: {} bytes differ",
                r.body.len()
            );
        }
        for missing in ["7/0/0", "7/72/64", "8/0/0", "6/64/0", "32/0/0", "x/0/0"] {
            let r = http(
                f.addr,
                "GET",
                &format!("/api/tiles/{missing}"),
                Some(VIEWER),
                None,
            );
            assert_eq!(r.status, 404, "{file} {missing}");
        }
        println!("{file}: {} tiles served byte-identical", tiles.len());
    }
}

/// The error `Archive::open` gives for `path`.
fn open_err(path: &Path) -> String {
    match Archive::open(path) {
        Ok(a) => panic!("{} opened: {a:?}", path.display()),
        Err(e) => {
            let s = e.to_string();
            assert!(
                s.starts_with(&path.display().to_string()),
                "the error names the file: {s}"
            );
            if matches!(e, PmtilesError::Io { .. }) {
                assert!(s.contains("cannot read"), "{s}");
            }
            s
        }
    }
}

#[test]
fn vector_damaged_and_missing_archives_are_named_errors_and_the_map_falls_back() {
    let dir = tempfile::tempdir().unwrap();
    let tiles = dir.path().join("tiles");
    write_tiles(&tiles);
    let good = dir.path().join("good.pmtiles");
    write_pmtiles(&tiles, &good, &[]);
    let bytes = std::fs::read(&good).unwrap();

    // A vector-tile archive (same writer, tile type MVT).
    let mvt = dir.path().join("vector.pmtiles");
    write_pmtiles(&tiles, &mvt, &["--tile-type", "mvt"]);
    let e = open_err(&mvt);
    assert!(e.contains("vector tiles (MVT)"), "{e}");
    assert!(e.contains("raster tiles"), "{e}");

    // Cut short: the sections the header points to lie beyond the end.
    let cut = dir.path().join("cut.pmtiles");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = open_err(&cut);
    assert!(e.contains("beyond the file's end"), "{e}");
    let cut = dir.path().join("header-only.pmtiles");
    std::fs::write(&cut, &bytes[..100]).unwrap();
    assert!(open_err(&cut).contains("shorter than the 127-byte header"));

    // The root directory damaged (its gzip stream's bytes flipped).
    let a = Archive::open(&good).unwrap();
    let (root, len) = a.header.root;
    let mut bad = bytes.clone();
    for b in &mut bad[root as usize + 10..(root + len) as usize] {
        *b ^= 0x5a;
    }
    let damaged = dir.path().join("damaged.pmtiles");
    std::fs::write(&damaged, &bad).unwrap();
    let e = open_err(&damaged);
    assert!(e.contains("root directory"), "{e}");

    // Not an archive at all, a version-2 file, and no file.
    let png = dir.path().join("tile.pmtiles");
    std::fs::write(&png, tile_png(0, 0, 0)).unwrap();
    assert!(open_err(&png).contains("no PMTiles magic"));
    let mut v2 = bytes.clone();
    v2[7] = 2;
    let old = dir.path().join("v2.pmtiles");
    std::fs::write(&old, &v2).unwrap();
    assert!(open_err(&old).contains("spec version 2"));
    assert!(open_err(&dir.path().join("none.pmtiles")).contains("No such file"));

    // The server: the map falls back (the reason in /api/map, naming the file), the tile
    // route answers 404, and everything else answers as usual.
    for file in ["vector.pmtiles", "damaged.pmtiles", "none.pmtiles"] {
        let f = start_in(
            tempfile::tempdir_in(dir.path()).unwrap(),
            &format!("{CONFIG}\n[server.map]\npmtiles = \"../{file}\"\n"),
        );
        let info = http(f.addr, "GET", "/api/map", Some(VIEWER), None).json();
        assert_eq!(info["basemap"], "none", "{info}");
        let err = info["error"].as_str().unwrap_or_default();
        assert!(
            err.starts_with("server.map.pmtiles: ") && err.contains(file),
            "{info}"
        );
        let r = http(f.addr, "GET", "/api/tiles/0/0/0", Some(VIEWER), None);
        assert_eq!(r.status, 404, "{file}");
        assert!(r.text().contains(file), "{}", r.text());
        let r = http(f.addr, "GET", "/api/incidents", Some(VIEWER), None);
        assert_eq!(r.status, 200, "{file}: the rest of the server answers");
        let r = http(
            f.addr,
            "GET",
            "/vendor/coastlines/land-50m.json",
            None,
            None,
        );
        assert_eq!(r.status, 200, "the offline coastlines are embedded");
        let land = r.json();
        assert_eq!(land["type"], "Topology");
        assert!(land["objects"]["land"].is_object());
    }
}

#[test]
fn a_large_sparse_archive_in_the_writers_default_layout_reads_back() {
    // 466,034 tiles over zooms 0..=10 (a third of them), in the writer's own leaf layout
    // (more leaves than the reader caches, so the cache evicts).
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("large.pmtiles");
    let made = write_pmtiles(dir.path(), &out, &["--synthetic", "10"]);
    let leaves = made["root_leaf_pointers"].as_u64().unwrap();
    assert!(leaves > 64, "{made}");
    let t0 = std::time::Instant::now();
    let a = Archive::open(&out).unwrap();
    let opened = t0.elapsed();
    let t0 = std::time::Instant::now();
    let (mut present, mut absent, mut reads) = (0u64, 0u64, 0u64);
    for z in 0..=10u32 {
        for x in 0..(1u32 << z) {
            for y in (0..(1u32 << z)).filter(|y| (x + y) % 5 == 0) {
                reads += 1;
                let got = a.tile(z as u8, x, y).unwrap();
                let kept = (7919 * u64::from(x) + 104729 * u64::from(y) + u64::from(z)) % 3 == 0;
                if kept {
                    let want = format!(
                        "{z}/{x}/{y}{}",
                        "#".repeat(((31 * x + 17 * y) % 50) as usize)
                    );
                    assert_eq!(got.as_deref(), Some(want.as_bytes()), "{z}/{x}/{y}");
                    present += 1;
                } else {
                    assert_eq!(got, None, "{z}/{x}/{y}");
                    absent += 1;
                }
                assert!(a.cached_leaves() <= 64);
            }
        }
    }
    let scanned = t0.elapsed();
    assert!(present > 50_000 && absent > 100_000, "{present} {absent}");
    println!(
        "{} tiles, {leaves} leaves, {} bytes: opened in {opened:?}; {reads} lookups ({present} present, {absent} absent) in {scanned:?}",
        made["tiles"],
        std::fs::metadata(&out).unwrap().len()
    );
}
