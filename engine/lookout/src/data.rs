//! `lookout data status` and `lookout data fetch`: the third-party files the demo, the tests
//! and the benches read from the shared data directory, listed in a manifest
//! (`samples/data.toml`, embedded): what is present, missing or corrupt, and downloading what
//! is missing over HTTPS with resume and sha256 verification. Never run at engine run time.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The embedded manifest (`samples/data.toml`).
pub const DATA_MANIFEST: &str = include_str!("../../../samples/data.toml");

/// `lookout data`.
#[derive(Debug, clap::Subcommand)]
pub enum DataCommand {
    /// List the manifest's files in the shared data directory: present, missing or corrupt
    /// (size or sha256 differs), and what each missing one disables. Exit 0 when every
    /// selected file is present and intact, 1 otherwise.
    Status(DataArgs),
    /// Download the missing or corrupt files that have a `download_url`, over HTTPS, with
    /// resume, progress and sha256 verification (a file that does not verify is not kept).
    /// Files without one are listed with their publisher's page. Exit 1 when any selected
    /// file is still missing afterwards.
    Fetch(DataArgs),
}

/// Which files a `data` command covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Only {
    /// What the embedded demo reads.
    Demo,
    /// What the tests read.
    Tests,
    /// Every file of the manifest.
    All,
}

/// Arguments of `lookout data status` and `lookout data fetch`.
#[derive(Debug, clap::Args)]
pub struct DataArgs {
    /// Which files.
    #[arg(long, value_enum, default_value_t = Only::All)]
    pub only: Only,
    /// The shared data directory (default: $LOOKOUT_SHARED, else ../shared, relative to the
    /// working directory).
    #[arg(long)]
    pub dest: Option<PathBuf>,
    /// A manifest file instead of the embedded `samples/data.toml`.
    #[arg(long)]
    pub manifest: Option<PathBuf>,
    /// For tests only: also allow plain-HTTP URLs on the loopback interface (127.0.0.1,
    /// ::1, localhost). Only this flag enables it; no file or variable can.
    #[arg(long, hide = true)]
    pub allow_http_loopback: bool,
}

/// One manifest entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Path under the shared directory.
    pub path: String,
    /// A file (default) or a directory checked as a whole.
    #[serde(default)]
    pub kind: Kind,
    /// Bytes (a directory: the sum of its files).
    pub size: u64,
    /// A directory: how many files it holds.
    #[serde(default)]
    pub files: Option<u64>,
    /// Hex sha256 (a directory: of its sorted `sha256  path` listing).
    pub sha256: String,
    /// The licence, shown before downloading.
    pub licence: String,
    /// The original repository's raw file or the publisher's page.
    pub source_url: String,
    /// The file itself, when it can be downloaded.
    #[serde(default)]
    pub download_url: Option<String>,
    /// What it is.
    #[serde(default)]
    pub note: Option<String>,
    /// Which features read it.
    pub needed_by: Vec<Feature>,
    /// What does not work while it is missing.
    pub disables: String,
}

/// File or directory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// One file.
    #[default]
    File,
    /// A directory of files.
    Dir,
}

/// Who reads an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Feature {
    /// The embedded demo.
    Demo,
    /// The test suites.
    Tests,
    /// The benchmarks.
    Benches,
    /// `lookout eval` / `eval-events` on the shared sets.
    Eval,
}

impl Feature {
    fn name(self) -> &'static str {
        match self {
            Feature::Demo => "demo",
            Feature::Tests => "tests",
            Feature::Benches => "benches",
            Feature::Eval => "eval",
        }
    }
}

impl Entry {
    fn selected(&self, only: Only) -> bool {
        match only {
            Only::All => true,
            Only::Demo => self.needed_by.contains(&Feature::Demo),
            Only::Tests => self.needed_by.contains(&Feature::Tests),
        }
    }
}

/// Reads and checks a manifest; every problem is a located error (exit 2).
pub fn parse_manifest(src: &str, origin: &str, allow_loopback: bool) -> anyhow::Result<Vec<Entry>> {
    let table: toml::Table = src.parse().map_err(|e: toml::de::Error| {
        lookout_config::located(src, origin, vec![(String::new(), e.message().to_string())])
    })?;
    let mut problems = Vec::new();
    let mut entries = Vec::new();
    for (k, v) in &table {
        if k != "entry" {
            problems.push((
                k.clone(),
                "unknown key: the manifest holds [[entry]] tables".into(),
            ));
            continue;
        }
        let Some(items) = v.as_array() else {
            problems.push((
                k.clone(),
                "must be an array of tables: write [[entry]]".into(),
            ));
            continue;
        };
        for (i, item) in items.iter().enumerate() {
            let key = format!("entry[{i}]");
            let e: Entry = match item.clone().try_into() {
                Ok(e) => e,
                Err(err) => {
                    let msg = err.message().to_string();
                    // Point a missing or unknown field at the entry, naming the field.
                    let field = msg.split('`').nth(1).filter(|_| {
                        msg.starts_with("missing field") || msg.starts_with("unknown field")
                    });
                    let path = match field {
                        Some(f) if msg.starts_with("unknown field") => format!("{key}.{f}"),
                        _ => key.clone(),
                    };
                    problems.push((path, msg));
                    continue;
                }
            };
            check_entry(&e, &key, allow_loopback, &mut problems);
            entries.push(e);
        }
    }
    if problems.is_empty() {
        Ok(entries)
    } else {
        Err(lookout_config::located(src, origin, problems).into())
    }
}

fn check_entry(e: &Entry, key: &str, allow_loopback: bool, problems: &mut Vec<(String, String)>) {
    let p = Path::new(&e.path);
    if e.path.is_empty()
        || p.is_absolute()
        || p.components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        problems.push((
            format!("{key}.path"),
            format!(
                "{:?} must be a relative path under the shared directory, without `..`",
                e.path
            ),
        ));
    }
    if e.sha256.len() != 64 || !e.sha256.chars().all(|c| c.is_ascii_hexdigit()) {
        problems.push((
            format!("{key}.sha256"),
            format!("{:?} is not 64 hex digits", e.sha256),
        ));
    }
    if let Err(m) = check_url(&e.source_url, allow_loopback) {
        problems.push((format!("{key}.source_url"), m));
    }
    if let Some(u) = &e.download_url {
        if let Err(m) = check_url(u, allow_loopback) {
            problems.push((format!("{key}.download_url"), m));
        }
        if e.kind == Kind::Dir {
            problems.push((
                format!("{key}.download_url"),
                "a directory entry cannot be downloaded as one file".into(),
            ));
        }
    }
    if e.kind == Kind::Dir && e.files.is_none() {
        problems.push((
            format!("{key}.files"),
            "missing: a directory entry says how many files it holds".into(),
        ));
    }
    if e.needed_by.is_empty() {
        problems.push((
            format!("{key}.needed_by"),
            "name at least one of demo, tests, benches, eval".into(),
        ));
    }
}

/// HTTPS only; plain HTTP to the loopback interface only when the test flag allows it.
fn check_url(u: &str, allow_loopback: bool) -> Result<(), String> {
    if u.starts_with("https://") && u.len() > "https://".len() {
        return Ok(());
    }
    if allow_loopback && is_loopback_http(u) {
        return Ok(());
    }
    Err(format!(
        "{u:?} is not an https:// URL: data is fetched over HTTPS only"
    ))
}

fn is_loopback_http(u: &str) -> bool {
    [
        "http://127.0.0.1:",
        "http://127.0.0.1/",
        "http://localhost:",
        "http://localhost/",
        "http://[::1]:",
        "http://[::1]/",
    ]
    .iter()
    .any(|p| u.starts_with(p))
}

/// What a file looks like on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Present with the manifest's size and sha256.
    Present,
    /// Not there.
    Missing,
    /// There, but it differs (why).
    Corrupt(String),
}

/// Checks one entry under `dest`.
pub fn state(e: &Entry, dest: &Path) -> State {
    let path = dest.join(&e.path);
    match e.kind {
        Kind::File => {
            let Ok(meta) = std::fs::metadata(&path) else {
                return State::Missing;
            };
            if !meta.is_file() {
                return State::Corrupt("not a file".into());
            }
            if meta.len() != e.size {
                return State::Corrupt(format!(
                    "{} bytes, the manifest says {}",
                    meta.len(),
                    e.size
                ));
            }
            match sha256_file(&path) {
                Ok(h) if h.eq_ignore_ascii_case(&e.sha256) => State::Present,
                Ok(h) => State::Corrupt(format!("sha256 {h}, the manifest says {}", e.sha256)),
                Err(err) => State::Corrupt(format!("cannot read: {err}")),
            }
        }
        Kind::Dir => {
            if !path.is_dir() {
                return State::Missing;
            }
            match tree_hash(&path) {
                Ok((h, _, _)) if h.eq_ignore_ascii_case(&e.sha256) => State::Present,
                Ok((_, size, n)) => State::Corrupt(format!(
                    "{n} files, {size} bytes; the manifest says {} files, {} bytes, and another listing sha256",
                    e.files.unwrap_or(0),
                    e.size
                )),
                Err(err) => State::Corrupt(format!("cannot read: {err}")),
            }
        }
    }
}

/// Lower-case hex sha256 of a file.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

/// A directory's hash: the sha256 of `<sha256>  <relative path>\n` per file, sorted by path
/// bytes (what `find . -type f | sort | xargs sha256sum | sha256sum` prints); with the total
/// size and the number of files.
pub fn tree_hash(dir: &Path) -> std::io::Result<(String, u64, u64)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let p = entry.path();
            let t = entry.file_type()?;
            if t.is_dir() {
                stack.push(p);
            } else if t.is_file() {
                let rel = p
                    .strip_prefix(dir)
                    .map_err(std::io::Error::other)?
                    .to_string_lossy()
                    .to_string();
                files.push(rel);
            }
        }
    }
    files.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    let mut h = Sha256::new();
    let mut size = 0;
    for f in &files {
        let p = dir.join(f);
        size += std::fs::metadata(&p)?.len();
        h.update(format!("{}  {f}\n", sha256_file(&p)?).as_bytes());
    }
    Ok((hex(&h.finalize()), size, files.len() as u64))
}

fn shared_dir(dest: Option<&Path>) -> PathBuf {
    match dest {
        Some(d) => lookout_config::absolute(d),
        None => match std::env::var_os("LOOKOUT_SHARED").filter(|v| !v.is_empty()) {
            Some(v) => lookout_config::absolute(Path::new(&v)),
            None => lookout_config::absolute(Path::new("../shared")),
        },
    }
}

fn load(args: &DataArgs) -> anyhow::Result<Vec<Entry>> {
    match &args.manifest {
        Some(p) => {
            let src = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            parse_manifest(&src, &p.display().to_string(), args.allow_http_loopback)
        }
        None => parse_manifest(
            DATA_MANIFEST,
            "samples/data.toml (embedded)",
            args.allow_http_loopback,
        ),
    }
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// Runs a `data` subcommand.
pub fn run(cmd: &DataCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        DataCommand::Status(a) => status(a),
        DataCommand::Fetch(a) => fetch(a),
    }
}

fn status(args: &DataArgs) -> anyhow::Result<ExitCode> {
    let entries = load(args)?;
    let dest = shared_dir(args.dest.as_deref());
    println!("shared data directory: {}", dest.display());
    if !dest.is_dir() {
        println!(
            "(it does not exist: `lookout data fetch --dest {}` creates it)",
            dest.display()
        );
    }
    println!("{:<8} {:>9}  {:<26} path", "state", "size", "needed by");
    let (mut present, mut missing, mut corrupt) = (0, 0, 0);
    for e in entries.iter().filter(|e| e.selected(args.only)) {
        let st = state(e, &dest);
        let needed: Vec<&str> = e.needed_by.iter().map(|f| f.name()).collect();
        let label = match &st {
            State::Present => "present",
            State::Missing => "MISSING",
            State::Corrupt(_) => "CORRUPT",
        };
        println!(
            "{label:<8} {:>9}  {:<26} {}",
            mb(e.size),
            needed.join(","),
            e.path
        );
        match st {
            State::Present => present += 1,
            State::Missing => {
                missing += 1;
                if let Some(n) = &e.note {
                    println!("         what: {n}");
                }
                println!("         disables: {}", e.disables);
                println!("         {}", how_to_get(e, &dest));
            }
            State::Corrupt(why) => {
                corrupt += 1;
                println!("         {why}");
                println!("         disables: {}", e.disables);
            }
        }
    }
    println!("{present} present, {missing} missing, {corrupt} corrupt");
    Ok(if missing + corrupt == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::EXIT_PARTIAL)
    })
}

fn how_to_get(e: &Entry, dest: &Path) -> String {
    match &e.download_url {
        Some(_) => "get it: `lookout data fetch`".to_string(),
        None => format!(
            "no direct download: get it from {} ({}) and put it at {}",
            e.source_url,
            e.licence,
            dest.join(&e.path).display()
        ),
    }
}

fn fetch(args: &DataArgs) -> anyhow::Result<ExitCode> {
    let entries = load(args)?;
    let dest = shared_dir(args.dest.as_deref());
    let agent = ureq::AgentBuilder::new()
        .https_only(!args.allow_http_loopback)
        .timeout_connect(Duration::from_secs(15))
        .timeout_read(Duration::from_secs(30))
        .user_agent(concat!("lookout/", env!("CARGO_PKG_VERSION")))
        .build();
    let (mut ok, mut fetched, mut failed, mut manual) = (0, 0, 0, 0);
    for e in entries.iter().filter(|e| e.selected(args.only)) {
        match state(e, &dest) {
            State::Present => {
                ok += 1;
                continue;
            }
            State::Corrupt(why) => eprintln!("{}: {why}; fetching it again", e.path),
            State::Missing => {}
        }
        let Some(url) = &e.download_url else {
            eprintln!("{}: {}", e.path, how_to_get(e, &dest));
            manual += 1;
            continue;
        };
        eprintln!(
            "{}: {} from {} (licence: {})",
            e.path,
            mb(e.size),
            url,
            e.licence
        );
        match download(&agent, e, url, &dest.join(&e.path)) {
            Ok(()) => {
                eprintln!("{}: verified (sha256 {})", e.path, e.sha256);
                fetched += 1;
            }
            Err(err) => {
                eprintln!("error: {}: {}", e.path, crate::report(&err));
                failed += 1;
            }
        }
    }
    println!("{ok} already present, {fetched} fetched, {failed} failed, {manual} to get by hand");
    Ok(if failed + manual == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::EXIT_PARTIAL)
    })
}

/// Downloads `url` to `to` through `<to>.part`, resuming a part left by an interrupted
/// download, then checks size and sha256: only a verified file is renamed into place; a
/// file that does not verify is deleted.
fn download(agent: &ureq::Agent, e: &Entry, url: &str, to: &Path) -> anyhow::Result<()> {
    let dir = to.parent().context("no parent directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let part = PathBuf::from(format!("{}.part", to.display()));
    let have = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
    let have = if have >= e.size { 0 } else { have };
    let mut req = agent.get(url);
    if have > 0 {
        req = req.set("Range", &format!("bytes={have}-"));
    }
    let resp = match req.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(code, r)) => {
            bail!("HTTP {code} {} from {url}", r.status_text())
        }
        Err(ureq::Error::Transport(t)) => bail!("cannot download {url}: {t}"),
    };
    let resumed = have > 0 && resp.status() == 206;
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(resumed)
        .truncate(!resumed)
        .open(&part)
        .with_context(|| format!("cannot write {}", part.display()))?;
    let mut done = if resumed { have } else { 0 };
    if resumed {
        eprintln!("{}: resuming at {}", e.path, mb(have));
    }
    let mut progress = Progress::new(e.size, done);
    let mut reader = resp.into_reader().take(e.size.saturating_sub(done) + 1);
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(n) => n,
            Err(err) => {
                progress.finish();
                bail!(
                    "download interrupted after {} of {} ({err}); run `lookout data fetch` again to resume",
                    mb(done),
                    mb(e.size)
                );
            }
        };
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n])
            .with_context(|| format!("cannot write {}", part.display()))?;
        done += n as u64;
        progress.update(done);
    }
    progress.finish();
    out.flush()
        .with_context(|| format!("cannot write {}", part.display()))?;
    drop(out);
    let discard = |why: String| -> anyhow::Result<()> {
        let _ = std::fs::remove_file(&part);
        bail!("{why}: the file is not kept")
    };
    if done != e.size {
        if done < e.size {
            bail!(
                "download ended after {} of {}; run `lookout data fetch` again to resume",
                mb(done),
                mb(e.size)
            );
        }
        return discard(format!("{done} bytes, more than the manifest's {}", e.size));
    }
    let got = sha256_file(&part).with_context(|| format!("cannot read {}", part.display()))?;
    if !got.eq_ignore_ascii_case(&e.sha256) {
        return discard(format!(
            "sha256 mismatch: got {got}, the manifest says {}",
            e.sha256
        ));
    }
    std::fs::rename(&part, to)
        .with_context(|| format!("cannot move the download to {}", to.display()))?;
    Ok(())
}

/// A progress line on stderr with rate and ETA (redrawn in place on a terminal, at most 4
/// times a second; a log gets no redraws).
struct Progress {
    total: u64,
    start_bytes: u64,
    started: Instant,
    last: Instant,
    tty: bool,
    shown: bool,
}

impl Progress {
    fn new(total: u64, start_bytes: u64) -> Self {
        let now = Instant::now();
        Progress {
            total,
            start_bytes,
            started: now,
            last: now,
            tty: std::io::stderr().is_terminal(),
            shown: false,
        }
    }

    fn line(&self, done: u64) -> String {
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let rate = (done - self.start_bytes) as f64 / secs;
        let eta = if rate > 0.0 {
            format!("{:.0} s", (self.total.saturating_sub(done)) as f64 / rate)
        } else {
            "-".into()
        };
        format!(
            "  {} / {} ({:.0} %), {}/s, ETA {eta}",
            mb(done),
            mb(self.total),
            100.0 * done as f64 / self.total.max(1) as f64,
            mb(rate as u64)
        )
    }

    fn update(&mut self, done: u64) {
        if self.tty && self.last.elapsed() >= Duration::from_millis(250) {
            self.last = Instant::now();
            eprint!("\r{}\x1b[K", self.line(done));
            self.shown = true;
        }
    }

    fn finish(&mut self) {
        if self.shown {
            eprintln!();
            self.shown = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_manifest_is_valid() {
        let e = parse_manifest(DATA_MANIFEST, "data.toml", false).unwrap();
        assert!(e.iter().any(|e| e.needed_by.contains(&Feature::Demo)));
        // Only HTTPS, even for the loopback interface, without the test flag.
        let src =
            DATA_MANIFEST.replacen("https://github.com/opencv", "http://127.0.0.1:9/opencv", 1);
        assert!(parse_manifest(&src, "data.toml", false).is_err());
    }
}
