//! A reader of PMTiles v3 archives (<https://github.com/protomaps/PMTiles/blob/main/spec/v3/spec.md>)
//! for the map's local raster basemap: the 127-byte header, varint directories (root and
//! leaves, internal compression none or gzip), run lengths and Hilbert tile ids. It reads
//! by offset (`pread`, never the whole file: a real basemap is gigabytes) and keeps a
//! bounded cache of leaf directories. Only raster archives (PNG, JPEG, WebP) are opened: a
//! vector-tile archive, an unknown compression or a damaged file is an error naming the
//! file.

use std::collections::VecDeque;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The header's length.
pub const HEADER_LEN: usize = 127;
/// Leaf directories kept in memory per archive.
const LEAF_CACHE: usize = 64;
/// Largest directory (compressed or not) and metadata accepted: the spec keeps the root
/// (with header) under 16 KiB; leaves of real planet archives are a few hundred KiB.
const MAX_DIR_BYTES: u64 = 32 << 20;
/// Directory levels below the root the spec allows (root + 3 leaf levels).
const MAX_DEPTH: usize = 4;

/// Errors opening or reading a PMTiles archive; each message starts with the file.
#[derive(Debug, thiserror::Error)]
pub enum PmtilesError {
    /// The file cannot be read.
    #[error("{path}: cannot read it: {source}")]
    Io {
        /// The archive.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The file is not a PMTiles v3 archive, or its structure is damaged.
    #[error("{path}: not a usable PMTiles v3 archive: {what}")]
    Corrupt {
        /// The archive.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// A valid archive the map cannot draw (vector tiles, an unsupported compression).
    #[error("{path}: {what}")]
    Unsupported {
        /// The archive.
        path: PathBuf,
        /// Why.
        what: String,
    },
}

/// The tiles' format (header byte 99).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TileType {
    /// PNG.
    Png,
    /// JPEG.
    Jpeg,
    /// WebP.
    Webp,
}

impl TileType {
    /// The HTTP content type.
    pub fn content_type(self) -> &'static str {
        match self {
            TileType::Png => "image/png",
            TileType::Jpeg => "image/jpeg",
            TileType::Webp => "image/webp",
        }
    }

    /// The name `/api/map` reports (as MBTiles' `format`).
    pub fn name(self) -> &'static str {
        match self {
            TileType::Png => "png",
            TileType::Jpeg => "jpg",
            TileType::Webp => "webp",
        }
    }
}

/// A compression (header bytes 97 and 98).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    None,
    Gzip,
}

/// The header fields the reader uses.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// Root directory offset and length.
    pub root: (u64, u64),
    /// Metadata (JSON) offset and length.
    pub metadata: (u64, u64),
    /// Leaf directories' section offset and length.
    pub leaves: (u64, u64),
    /// Tile data section offset and length.
    pub data: (u64, u64),
    /// Lowest and highest zoom.
    pub min_zoom: u8,
    /// Highest zoom.
    pub max_zoom: u8,
    /// West, south, east, north in degrees.
    pub bounds: [f64; 4],
    /// Tile format.
    pub tile_type: TileType,
    internal: Compression,
    tile_compression: Compression,
}

/// A directory entry: `run_length` 0 points to a leaf directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// First tile id.
    pub tile_id: u64,
    /// Offset in the tile data (or leaf) section.
    pub offset: u64,
    /// Length in bytes.
    pub length: u32,
    /// Tiles sharing these bytes (consecutive ids); 0: a leaf directory.
    pub run_length: u32,
}

/// An open archive: the file, its header and root directory, a bounded leaf cache.
pub struct Archive {
    path: PathBuf,
    file: File,
    len: u64,
    /// The header.
    pub header: Header,
    root: Vec<Entry>,
    /// The metadata's `attribution`, if any.
    pub attribution: Option<String>,
    leaves: Mutex<VecDeque<(u64, Arc<Vec<Entry>>)>>,
}

impl std::fmt::Debug for Archive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Archive")
            .field("path", &self.path)
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

/// The tile id of `z/x/y`: tiles of lower zooms first, then the position along the
/// Hilbert curve over the `2^z × 2^z` grid. `None` beyond zoom 31 or outside the grid.
pub fn zxy_to_tile_id(z: u8, x: u32, y: u32) -> Option<u64> {
    if z > 31 {
        return None;
    }
    let n = 1u64 << z;
    let (mut x, mut y) = (u64::from(x), u64::from(y));
    if x >= n || y >= n {
        return None;
    }
    let base = ((1u128 << (2 * u32::from(z))) - 1) / 3;
    let mut d: u64 = 0;
    let mut s = n / 2;
    while s > 0 {
        let rx = u64::from(x & s > 0);
        let ry = u64::from(y & s > 0);
        d += s * s * ((3 * rx) ^ ry);
        rotate(n, &mut x, &mut y, rx, ry);
        s /= 2;
    }
    Some(base as u64 + d)
}

/// The `z/x/y` of a tile id (the inverse of [`zxy_to_tile_id`]); `None` beyond zoom 31.
pub fn tile_id_to_zxy(id: u64) -> Option<(u8, u32, u32)> {
    let mut base: u64 = 0;
    for z in 0..32u8 {
        let count = 1u64 << (2 * u32::from(z));
        if id < base + count {
            let mut t = id - base;
            let n = 1u64 << z;
            let (mut x, mut y) = (0u64, 0u64);
            let mut s = 1u64;
            while s < n {
                let rx = 1 & (t / 2);
                let ry = 1 & (t ^ rx);
                rotate(s, &mut x, &mut y, rx, ry);
                x += s * rx;
                y += s * ry;
                t /= 4;
                s *= 2;
            }
            return Some((z, x as u32, y as u32));
        }
        base += count;
    }
    None
}

fn rotate(n: u64, x: &mut u64, y: &mut u64, rx: u64, ry: u64) {
    if ry == 0 {
        if rx == 1 {
            *x = n - 1 - *x;
            *y = n - 1 - *y;
        }
        std::mem::swap(x, y);
    }
}

/// Reads a varint (LEB128, at most 10 bytes).
fn varint(b: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v: u64 = 0;
    for shift in (0..70).step_by(7) {
        let byte = *b.get(*pos)?;
        *pos += 1;
        if shift == 63 && byte > 1 {
            return None;
        }
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Parses an uncompressed directory.
pub fn parse_directory(b: &[u8]) -> Result<Vec<Entry>, String> {
    let mut pos = 0;
    let mut next =
        |what: &str| varint(b, &mut pos).ok_or_else(|| format!("directory ends inside its {what}"));
    let n = next("entry count")?;
    // Every entry takes at least 4 bytes.
    if n > b.len() as u64 / 4 + 1 {
        return Err(format!("directory claims {n} entries in {} bytes", b.len()));
    }
    let n = n as usize;
    let mut entries = vec![
        Entry {
            tile_id: 0,
            offset: 0,
            length: 0,
            run_length: 0
        };
        n
    ];
    let mut last: u64 = 0;
    for (i, e) in entries.iter_mut().enumerate() {
        let delta = next("tile ids")?;
        if i > 0 && delta == 0 {
            return Err("directory tile ids are not increasing".into());
        }
        last = last
            .checked_add(delta)
            .ok_or("directory tile id overflows")?;
        e.tile_id = last;
    }
    for e in entries.iter_mut() {
        e.run_length = u32::try_from(next("run lengths")?).map_err(|_| "run length too large")?;
    }
    for e in entries.iter_mut() {
        e.length = u32::try_from(next("lengths")?).map_err(|_| "entry length too large")?;
    }
    for i in 0..n {
        let v = next("offsets")?;
        entries[i].offset = if i > 0 && v == 0 {
            entries[i - 1].offset + u64::from(entries[i - 1].length)
        } else {
            v.checked_sub(1).ok_or("first directory offset is 0")?
        };
    }
    if pos != b.len() {
        return Err(format!(
            "directory has {} bytes after its last entry",
            b.len() - pos
        ));
    }
    Ok(entries)
}

/// The entry holding `id`: the last one whose id is ≤ `id`, if `id` is within its run
/// (or it is a leaf pointer).
pub fn find_entry(entries: &[Entry], id: u64) -> Option<Entry> {
    let i = entries.partition_point(|e| e.tile_id <= id);
    let e = *entries.get(i.checked_sub(1)?)?;
    if e.run_length == 0 || id - e.tile_id < u64::from(e.run_length) {
        Some(e)
    } else {
        None
    }
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

fn le_i32(b: &[u8], at: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    i32::from_le_bytes(a)
}

impl Archive {
    /// Opens `path`: reads and checks the header, the root directory and the metadata.
    pub fn open(path: &Path) -> Result<Archive, PmtilesError> {
        let io = |source| PmtilesError::Io {
            path: path.to_path_buf(),
            source,
        };
        let corrupt = |what: String| PmtilesError::Corrupt {
            path: path.to_path_buf(),
            what,
        };
        let unsupported = |what: String| PmtilesError::Unsupported {
            path: path.to_path_buf(),
            what,
        };
        let file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len < HEADER_LEN as u64 {
            return Err(corrupt(format!(
                "{len} bytes, shorter than the 127-byte header"
            )));
        }
        let mut h = [0u8; HEADER_LEN];
        file.read_exact_at(&mut h, 0).map_err(io)?;
        if &h[..7] != b"PMTiles" {
            return Err(corrupt("no PMTiles magic at its start".into()));
        }
        if h[7] != 3 {
            return Err(unsupported(format!(
                "PMTiles spec version {}; this reader reads version 3",
                h[7]
            )));
        }
        let section = |at: usize, name: &str| -> Result<(u64, u64), PmtilesError> {
            let (o, l) = (le_u64(&h, at), le_u64(&h, at + 8));
            if o.checked_add(l).is_none_or(|end| end > len) {
                return Err(corrupt(format!(
                    "its {name} (offset {o}, {l} bytes) lies beyond the file's end ({len} bytes)"
                )));
            }
            Ok((o, l))
        };
        let root = section(8, "root directory")?;
        let metadata = section(24, "metadata")?;
        let leaves = section(40, "leaf directories")?;
        let data = section(56, "tile data")?;
        let compression = |b: u8, what: &str| match b {
            0 | 1 => Ok(Compression::None),
            2 => Ok(Compression::Gzip),
            3 => Err(unsupported(format!(
                "its {what} is brotli-compressed; this reader reads none or gzip"
            ))),
            4 => Err(unsupported(format!(
                "its {what} is zstd-compressed; this reader reads none or gzip"
            ))),
            b => Err(corrupt(format!("unknown {what} compression {b}"))),
        };
        let internal = match h[97] {
            0 => return Err(corrupt("unknown internal compression (0)".into())),
            b => compression(b, "directories")?,
        };
        let tile_compression = compression(h[98], "tiles")?;
        let tile_type = match h[99] {
            1 => return Err(unsupported(
                "it holds vector tiles (MVT); the map draws raster tiles (PNG, JPEG, WebP) only"
                    .into(),
            )),
            2 => TileType::Png,
            3 => TileType::Jpeg,
            4 => TileType::Webp,
            5 => {
                return Err(unsupported(
                    "it holds AVIF tiles; the map draws PNG, JPEG or WebP tiles only".into(),
                ))
            }
            6 => return Err(unsupported(
                "it holds vector tiles (MLT); the map draws raster tiles (PNG, JPEG, WebP) only"
                    .into(),
            )),
            b => {
                return Err(unsupported(format!(
                    "unknown tile type {b}; the map draws raster tiles (PNG, JPEG, WebP) only"
                )))
            }
        };
        let (min_zoom, max_zoom) = (h[100], h[101]);
        if min_zoom > max_zoom || max_zoom > 31 {
            return Err(corrupt(format!("zooms {min_zoom}..{max_zoom}")));
        }
        let e7 = |at: usize| f64::from(le_i32(&h, at)) / 1e7;
        let header = Header {
            root,
            metadata,
            leaves,
            data,
            min_zoom,
            max_zoom,
            bounds: [e7(102), e7(106), e7(110), e7(114)],
            tile_type,
            internal,
            tile_compression,
        };
        let mut a = Archive {
            path: path.to_path_buf(),
            file,
            len,
            header,
            root: Vec::new(),
            attribution: None,
            leaves: Mutex::new(VecDeque::new()),
        };
        let raw = a.read_section(root.0, root.1, "root directory")?;
        a.root = parse_directory(&raw).map_err(|w| corrupt(format!("root directory: {w}")))?;
        if a.root.is_empty() {
            return Err(corrupt("its root directory is empty".into()));
        }
        if metadata.1 > 0 {
            let raw = a.read_section(metadata.0, metadata.1, "metadata")?;
            let meta: serde_json::Value = serde_json::from_slice(&raw)
                .map_err(|e| corrupt(format!("metadata is not JSON: {e}")))?;
            a.attribution = meta
                .get("attribution")
                .and_then(|v| v.as_str())
                .map(str::to_string);
        }
        Ok(a)
    }

    /// The archive's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn corrupt(&self, what: String) -> PmtilesError {
        PmtilesError::Corrupt {
            path: self.path.clone(),
            what,
        }
    }

    fn read_at(&self, offset: u64, len: u64, what: &str) -> Result<Vec<u8>, PmtilesError> {
        if offset.checked_add(len).is_none_or(|end| end > self.len) {
            return Err(self.corrupt(format!(
                "its {what} (offset {offset}, {len} bytes) lies beyond the file's end"
            )));
        }
        let mut buf = vec![0u8; len as usize];
        self.file
            .read_exact_at(&mut buf, offset)
            .map_err(|source| PmtilesError::Io {
                path: self.path.clone(),
                source,
            })?;
        Ok(buf)
    }

    /// Reads a directory or the metadata (internal compression applied).
    fn read_section(&self, offset: u64, len: u64, what: &str) -> Result<Vec<u8>, PmtilesError> {
        if len > MAX_DIR_BYTES {
            return Err(self.corrupt(format!(
                "its {what} is {len} bytes, more than {MAX_DIR_BYTES}"
            )));
        }
        let raw = self.read_at(offset, len, what)?;
        match self.header.internal {
            Compression::None => Ok(raw),
            Compression::Gzip => gunzip(&raw, MAX_DIR_BYTES)
                .map_err(|e| self.corrupt(format!("its {what} does not decompress: {e}"))),
        }
    }

    fn leaf(&self, offset: u64, length: u32) -> Result<Arc<Vec<Entry>>, PmtilesError> {
        let at = self
            .header
            .leaves
            .0
            .checked_add(offset)
            .ok_or_else(|| self.corrupt("leaf directory offset overflows".into()))?;
        {
            let mut cache = self.leaves.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(i) = cache.iter().position(|(o, _)| *o == at) {
                let hit = cache.remove(i).map(|(_, d)| d);
                if let Some(d) = hit {
                    cache.push_front((at, d.clone()));
                    return Ok(d);
                }
            }
        }
        let raw = self.read_section(at, u64::from(length), "leaf directory")?;
        let dir = Arc::new(
            parse_directory(&raw)
                .map_err(|w| self.corrupt(format!("leaf directory at {at}: {w}")))?,
        );
        let mut cache = self.leaves.lock().unwrap_or_else(|e| e.into_inner());
        cache.push_front((at, dir.clone()));
        cache.truncate(LEAF_CACHE);
        Ok(dir)
    }

    /// Leaf directories in the cache now (at most 64).
    pub fn cached_leaves(&self) -> usize {
        self.leaves.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// The tile at `z/x/y` (XYZ), decompressed; `None` when the archive has none there.
    pub fn tile(&self, z: u8, x: u32, y: u32) -> Result<Option<Vec<u8>>, PmtilesError> {
        let Some(id) = zxy_to_tile_id(z, x, y) else {
            return Ok(None);
        };
        let mut dir: Arc<Vec<Entry>> = Arc::new(Vec::new());
        let mut entries: &[Entry] = &self.root;
        for _ in 0..MAX_DEPTH {
            let Some(e) = find_entry(entries, id) else {
                return Ok(None);
            };
            if e.run_length > 0 {
                let at = self
                    .header
                    .data
                    .0
                    .checked_add(e.offset)
                    .ok_or_else(|| self.corrupt("tile offset overflows".into()))?;
                let raw = self.read_at(at, u64::from(e.length), "tile")?;
                return match self.header.tile_compression {
                    Compression::None => Ok(Some(raw)),
                    Compression::Gzip => gunzip(&raw, 64 << 20).map(Some).map_err(|err| {
                        self.corrupt(format!("tile {z}/{x}/{y} does not decompress: {err}"))
                    }),
                };
            }
            dir = self.leaf(e.offset, e.length)?;
            entries = &dir;
        }
        drop(dir);
        Err(self.corrupt(format!("directories nest deeper than {MAX_DEPTH} levels")))
    }
}

fn gunzip(b: &[u8], limit: u64) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(b)
        .take(limit + 1)
        .read_to_end(&mut out)?;
    if out.len() as u64 > limit {
        return Err(std::io::Error::other(format!(
            "more than {limit} bytes decompressed"
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ids the spec's reference implementations (the PMTiles project's Go and Python
    /// readers) give for these tiles.
    #[test]
    fn tile_ids_match_the_spec() {
        let cases: &[((u8, u32, u32), u64)] = &[
            ((0, 0, 0), 0),
            ((1, 0, 0), 1),
            ((1, 0, 1), 2),
            ((1, 1, 1), 3),
            ((1, 1, 0), 4),
            ((2, 0, 0), 5),
            ((3, 0, 0), 21),
            ((12, 3423, 1763), 19078479),
        ];
        for &((z, x, y), id) in cases {
            assert_eq!(zxy_to_tile_id(z, x, y), Some(id), "{z}/{x}/{y}");
            assert_eq!(tile_id_to_zxy(id), Some((z, x, y)), "id {id}");
        }
        // Round trips over whole zooms, and ids are dense: zoom z starts at (4^z - 1) / 3.
        for z in 0..=6u8 {
            let n = 1u32 << z;
            let base = ((1u64 << (2 * z)) - 1) / 3;
            let mut seen = vec![false; (n * n) as usize];
            for x in 0..n {
                for y in 0..n {
                    let id = zxy_to_tile_id(z, x, y).unwrap();
                    assert!(
                        id >= base && id < base + u64::from(n * n),
                        "{z}/{x}/{y}: {id}"
                    );
                    assert!(!std::mem::replace(&mut seen[(id - base) as usize], true));
                    assert_eq!(tile_id_to_zxy(id), Some((z, x, y)));
                }
            }
        }
        // The largest zoom the ids address, and past it.
        let max = zxy_to_tile_id(31, (1 << 31) - 1, (1 << 31) - 1).unwrap();
        assert_eq!(tile_id_to_zxy(max).map(|t| t.0), Some(31));
        assert_eq!(zxy_to_tile_id(32, 0, 0), None);
        assert_eq!(zxy_to_tile_id(2, 4, 0), None);
    }

    #[test]
    fn varints_and_directories_reject_truncation() {
        let mut p = 0;
        assert_eq!(varint(&[0xac, 0x02], &mut p), Some(300));
        let mut p = 0;
        assert_eq!(varint(&[0xac], &mut p), None);
        // Two entries: ids 5 and 7, runs 1 and 2, lengths 10 and 20, offsets 0 and 10
        // (encoded 1 and 0: "right after the previous").
        let d = [2, 5, 2, 1, 2, 10, 20, 1, 0];
        let e = parse_directory(&d).unwrap();
        assert_eq!(
            e,
            vec![
                Entry {
                    tile_id: 5,
                    offset: 0,
                    length: 10,
                    run_length: 1
                },
                Entry {
                    tile_id: 7,
                    offset: 10,
                    length: 20,
                    run_length: 2
                }
            ]
        );
        assert_eq!(find_entry(&e, 4), None);
        assert_eq!(find_entry(&e, 5).map(|e| e.offset), Some(0));
        assert_eq!(find_entry(&e, 6), None);
        assert_eq!(find_entry(&e, 8).map(|e| e.offset), Some(10));
        assert_eq!(find_entry(&e, 9), None);
        for cut in 1..d.len() {
            assert!(parse_directory(&d[..cut]).is_err(), "cut at {cut}");
        }
        assert!(
            parse_directory(&[1, 5, 1, 10, 0]).is_err(),
            "offset 0 first"
        );
    }
}
