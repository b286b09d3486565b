//! Pipeline templates (`pipelines/*.pipeline`, embedded) and how a camera's source config
//! fills them.
//!
//! A template is `gst-launch-1.0` syntax with `{name}` placeholders; lines starting with
//! `#` are documentation (with a runnable `gst-launch-1.0` line). Values are quoted and
//! escaped, so a URL with `&` or a path with spaces stays one property value.

use std::path::PathBuf;

use lookout_config::cameras::{RtspTransport, SourceConfig};
use lookout_config::Config;

/// `pipelines/analysis.pipeline`: the tail every camera shares.
pub const ANALYSIS: &str = include_str!("../../../pipelines/analysis.pipeline");
/// `pipelines/rtsp.pipeline`.
pub const RTSP: &str = include_str!("../../../pipelines/rtsp.pipeline");
/// `pipelines/rtmp.pipeline`.
pub const RTMP: &str = include_str!("../../../pipelines/rtmp.pipeline");
/// `pipelines/srt.pipeline`.
pub const SRT: &str = include_str!("../../../pipelines/srt.pipeline");
/// `pipelines/udp-ts.pipeline`.
pub const UDP_TS: &str = include_str!("../../../pipelines/udp-ts.pipeline");
/// `pipelines/file.pipeline`.
pub const FILE: &str = include_str!("../../../pipelines/file.pipeline");
/// `pipelines/test.pipeline`.
pub const TEST: &str = include_str!("../../../pipelines/test.pipeline");

/// Every template with its file name (for documentation checks).
pub const ALL: &[(&str, &str)] = &[
    ("analysis.pipeline", ANALYSIS),
    ("rtsp.pipeline", RTSP),
    ("rtmp.pipeline", RTMP),
    ("srt.pipeline", SRT),
    ("udp-ts.pipeline", UDP_TS),
    ("file.pipeline", FILE),
    ("test.pipeline", TEST),
];

/// The pipeline body of a template: its non-comment lines joined by spaces.
pub fn body(template: &str) -> String {
    template
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The runnable `gst-launch-1.0 ...` lines of a template's documentation.
pub fn documented_commands(template: &str) -> Vec<String> {
    template
        .lines()
        .filter_map(|l| {
            l.trim_start_matches('#')
                .trim()
                .strip_prefix("gst-launch-1.0 ")
        })
        .map(str::to_string)
        .collect()
}

/// Quotes a value for `gst-launch` syntax.
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Replaces `{name}` placeholders in one pass (values are not scanned again); fails on a
/// placeholder without a value.
pub fn fill(template: &str, values: &[(&str, String)]) -> Result<String, String> {
    let body = body(template);
    let mut out = String::with_capacity(body.len() + 64);
    let mut rest = body.as_str();
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let Some(end) = after.find('}') else {
            return Err(format!("unclosed placeholder in {:?}", &rest[start..]));
        };
        let name = &after[..end];
        match values.iter().find(|(n, _)| *n == name) {
            Some((_, v)) => out.push_str(v),
            None => return Err(format!("unfilled placeholder {{{name}}}")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A camera's pipeline, ready for `gst::parse::launch`.
#[derive(Clone)]
pub struct PipelineText {
    /// The description with secrets (URL passwords) in clear: never log it.
    pub launch: String,
    /// The same with secrets redacted: safe to log.
    pub redacted: String,
    /// For file sources, the resolved path.
    pub file: Option<PathBuf>,
}

impl std::fmt::Debug for PipelineText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted)
    }
}

/// Placeholder values of one template.
type Values = Vec<(&'static str, String)>;

/// Fills the source template and the analysis tail for one camera's source.
pub fn pipeline_text(cfg: &Config, source: &SourceConfig) -> Result<PipelineText, String> {
    let mut file = None;
    let mut sync = false;
    // (template, values, redacted values)
    let (template, values, redacted): (&str, Values, Values) = match source {
        SourceConfig::Rtsp {
            url,
            transport,
            latency_ms,
        } => {
            let protocols = match transport {
                RtspTransport::Tcp => "tcp",
                RtspTransport::Udp => "udp",
            };
            let common = vec![
                ("protocols", protocols.to_string()),
                ("latency_ms", latency_ms.to_string()),
            ];
            let mut v = common.clone();
            v.push(("url", quote(url.value())));
            let mut r = common;
            r.push(("url", quote(&url.redacted())));
            (RTSP, v, r)
        }
        SourceConfig::Rtmp { url } => (
            RTMP,
            vec![("url", quote(url.value()))],
            vec![("url", quote(&url.redacted()))],
        ),
        SourceConfig::Srt { url } => (
            SRT,
            vec![("url", quote(url.value()))],
            vec![("url", quote(&url.redacted()))],
        ),
        SourceConfig::UdpTs { port, address } => {
            let v = vec![("address", quote(address)), ("port", port.to_string())];
            (UDP_TS, v.clone(), v)
        }
        SourceConfig::File { path, realtime, .. } => {
            let p = cfg.resolve_path(path.value());
            sync = *realtime;
            let v = vec![("path", quote(&p.to_string_lossy()))];
            file = Some(p);
            (FILE, v.clone(), v)
        }
        SourceConfig::Test {
            pattern,
            width,
            height,
            framerate,
        } => {
            let v = vec![
                ("pattern", quote(pattern)),
                ("width", width.to_string()),
                ("height", height.to_string()),
                ("framerate", framerate.to_string()),
            ];
            (TEST, v.clone(), v)
        }
    };
    let upstream = fill(template, &values)?;
    let upstream_redacted = fill(template, &redacted)?;
    let tail = |up: String| fill(ANALYSIS, &[("upstream", up), ("sync", sync.to_string())]);
    Ok(PipelineText {
        launch: tail(upstream)?,
        redacted: tail(upstream_redacted)?,
        file,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_escapes() {
        assert_eq!(quote(r#"a "b" \c"#), r#""a \"b\" \\c""#);
    }

    #[test]
    fn fill_rejects_leftovers() {
        assert!(fill("a {x} {y}", &[("x", "1".into())]).is_err());
        assert_eq!(fill("# doc\na {x}\n", &[("x", "1".into())]).unwrap(), "a 1");
        // Values are not scanned for placeholders.
        assert_eq!(fill("{x}", &[("x", "{y}".into())]).unwrap(), "{y}");
    }

    #[test]
    fn every_template_documents_a_command() {
        for (name, t) in ALL {
            assert!(
                !documented_commands(t).is_empty(),
                "{name} has no gst-launch-1.0 line"
            );
            assert!(!body(t).is_empty(), "{name} has no pipeline");
        }
    }
}
