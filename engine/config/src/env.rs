//! `${ENV_NAME}` substitution and secret redaction.
//!
//! Any string field typed [`EnvString`] may contain `${NAME}` or `${NAME:-default}`;
//! the variable is read when the config is loaded, and a missing variable without a default
//! is a located error. Dumps and logs show the template (`${RTSP_PASS}`), never the value,
//! and a password written literally in a URL's user-info is shown as `***`.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A string read from config with environment variables expanded.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct EnvString {
    template: String,
    value: String,
}

impl EnvString {
    /// A literal value (no expansion), e.g. for defaults.
    pub fn literal(s: impl Into<String>) -> Self {
        let s = s.into();
        EnvString {
            template: s.clone(),
            value: s,
        }
    }

    /// Expands `template` against the process environment.
    pub fn expand(template: &str) -> Result<Self, String> {
        Ok(EnvString {
            template: template.to_string(),
            value: expand_env(template, |k| std::env::var(k).ok())?,
        })
    }

    /// The expanded value: use it, never log it.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// The text as written in the file, with secrets redacted: safe to log and dump.
    pub fn redacted(&self) -> String {
        redact_url_userinfo(&self.template)
    }

    /// When the written text starts with a `${NAME}` or `${NAME:-default}` reference and
    /// the environment sets `NAME` (non-empty): its value. Path keys use it to resolve a
    /// relative value from the environment against the working directory, where it was
    /// written ([`crate::resolve_config_path`]).
    pub fn leading_env_value(&self) -> Option<String> {
        let inner = self.template.strip_prefix("${")?;
        let end = inner.find('}')?;
        let name = inner[..end].split(":-").next()?;
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }

    /// The text as written, unredacted (for re-serializing a value the way it was written,
    /// never for showing).
    pub(crate) fn template(&self) -> &str {
        &self.template
    }

    /// True when the written text contained a `${...}` reference.
    pub fn uses_env(&self) -> bool {
        self.template.contains("${")
    }
}

impl fmt::Debug for EnvString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

impl fmt::Display for EnvString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl<'de> Deserialize<'de> for EnvString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        EnvString::expand(&s).map_err(serde::de::Error::custom)
    }
}

impl Serialize for EnvString {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.redacted())
    }
}

/// A secret (token, password): expanded like [`EnvString`], but never shown, not even its
/// template, unless it was written as a `${NAME}` reference.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(EnvString);

impl Secret {
    /// A literal secret (tests).
    pub fn literal(s: impl Into<String>) -> Self {
        Secret(EnvString::literal(s))
    }

    /// The secret value: compare it, send it, never log it.
    pub fn expose(&self) -> &str {
        self.0.value()
    }

    /// What may be shown: the `${NAME}` reference, or `***`.
    pub fn redacted(&self) -> String {
        if self.0.uses_env() && !self.0.template.contains(":-") {
            self.0.template.clone()
        } else {
            "***".to_string()
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({})", self.redacted())
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        EnvString::deserialize(d).map(Secret)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.redacted())
    }
}

/// Expands `${NAME}` and `${NAME:-default}` using `lookup`.
pub fn expand_env(
    template: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(format!(
                "unclosed `${{` in {:?}: write ${{NAME}} or ${{NAME:-default}}",
                redact_url_userinfo(template)
            ));
        };
        let inner = &after[..end];
        let (name, default) = match inner.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (inner, None),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!(
                "`${{{inner}}}` is not a valid variable reference: names use A-Z, 0-9 and _"
            ));
        }
        match (lookup(name), default) {
            (Some(v), _) if !v.is_empty() => out.push_str(&v),
            (_, Some(d)) => out.push_str(d),
            (Some(v), None) => out.push_str(&v),
            (None, None) => {
                return Err(format!(
                    "environment variable `{name}` is not set (write ${{{name}:-default}} for a default)"
                ))
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Replaces the password in `scheme://user:password@host` with `***`.
pub fn redact_url_userinfo(s: &str) -> String {
    if let Some(scheme_end) = s.find("://") {
        let auth_start = scheme_end + 3;
        let rest = &s[auth_start..];
        let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..auth_end];
        if let Some(at) = authority.rfind('@') {
            let userinfo = &authority[..at];
            if let Some(colon) = userinfo.find(':') {
                let pass = &userinfo[colon + 1..];
                if !(pass.starts_with("${") && pass.ends_with('}') && !pass.contains(":-")) {
                    return format!(
                        "{}{}:***{}",
                        &s[..auth_start],
                        &userinfo[..colon],
                        &s[auth_start + at..]
                    );
                }
            }
        }
    }
    s.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_and_defaults() {
        let look = |k: &str| (k == "A").then(|| "1".to_string());
        assert_eq!(expand_env("x${A}y", look).as_deref(), Ok("x1y"));
        assert_eq!(expand_env("${B:-d}/p", look).as_deref(), Ok("d/p"));
        assert!(expand_env("${B}", look)
            .unwrap_err()
            .contains("`B` is not set"));
        assert!(expand_env("${A", look).is_err());
        assert!(expand_env("${a-b}", look).is_err());
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url_userinfo("rtsp://admin:hunter2@10.0.0.1:554/s"),
            "rtsp://admin:***@10.0.0.1:554/s"
        );
        assert_eq!(
            redact_url_userinfo("rtsp://admin:${PASS}@h/s"),
            "rtsp://admin:${PASS}@h/s"
        );
        assert_eq!(redact_url_userinfo("rtsp://h/s"), "rtsp://h/s");
        assert_eq!(Secret::literal("tok").redacted(), "***");
    }
}
