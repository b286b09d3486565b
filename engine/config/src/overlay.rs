//! Config overlays: changes made through the API, kept as a JSON merge patch
//! ([RFC 7386](https://www.rfc-editor.org/rfc/rfc7386)) over the TOML file's `[rules]`.
//!
//! The running rules are always **file rules + the latest overlay's patch**. The patch is
//! cumulative (it holds every API change still in force, relative to the file's rules when
//! the change was made), so it is re-applied as it is when the file reloads and at every
//! start: an operator's threshold survives an edit of an unrelated key in the file and a
//! restart. Objects merge key by key; arrays (masks, zones, duty posts ...) and scalars are
//! replaced whole.
//!
//! Each overlay also keeps the file's `[rules]` as they were when it was made (`base`), so
//! a later edit of the file under a key the overlay sets is reported as a [`Conflict`] (the
//! overlay still wins). A patch that no longer validates over the edited file is rejected:
//! the file's rules run and the rejection is reported, never silently dropped.
//!
//! Everything here is pure: the store, logging and hot reload live with the caller.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::rules::RulesConfig;
use crate::validate::{ValidationContext, Validator};
use crate::Config;

/// The `format` of an overlay body written by this module.
pub const FORMAT: &str = "rules-merge-patch/1";

/// Applies a JSON merge patch (RFC 7386) to `target` in place.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(t) = target {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

/// `target` with `patch` applied.
pub fn patched(target: &Value, patch: &Value) -> Value {
    let mut t = target.clone();
    merge_patch(&mut t, patch);
    t
}

/// The merge patch that turns `from` into `to` (an empty object when they are equal).
///
/// Merge patches cannot set a value to `null` (null deletes); callers check the round trip
/// when that matters ([`make_overlay`] does).
pub fn diff(from: &Value, to: &Value) -> Value {
    match (from, to) {
        (Value::Object(f), Value::Object(t)) => {
            let mut out = Map::new();
            for k in f.keys() {
                if !t.contains_key(k) {
                    out.insert(k.clone(), Value::Null);
                }
            }
            for (k, tv) in t {
                match f.get(k) {
                    Some(fv) if fv == tv => {}
                    Some(fv) if fv.is_object() && tv.is_object() => {
                        out.insert(k.clone(), diff(fv, tv));
                    }
                    _ => {
                        out.insert(k.clone(), tv.clone());
                    }
                }
            }
            Value::Object(out)
        }
        _ => to.clone(),
    }
}

/// A key path such as `cameras.tower1.classes.smoke.threshold` (keys that are not plain
/// identifiers are quoted).
pub fn path_string(segments: &[String]) -> String {
    segments
        .iter()
        .map(|s| {
            if !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                s.clone()
            } else {
                format!("\"{s}\"")
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// One key whose value differs between two documents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// Key path relative to the section (`cameras.tower1.classes.smoke.threshold`).
    pub path: String,
    /// Value before (`None`: the key is absent).
    pub from: Option<Value>,
    /// Value after (`None`: the key is absent).
    pub to: Option<Value>,
}

/// The leaf keys that differ between `from` and `to`, in key order. Objects are compared
/// key by key; arrays and scalars as whole values.
pub fn changes(from: &Value, to: &Value) -> Vec<Change> {
    let mut out = Vec::new();
    walk_changes(&mut Vec::new(), Some(from), Some(to), &mut out);
    out
}

fn walk_changes(
    path: &mut Vec<String>,
    from: Option<&Value>,
    to: Option<&Value>,
    out: &mut Vec<Change>,
) {
    match (from, to) {
        (Some(Value::Object(f)), Some(Value::Object(t))) => {
            let mut keys: Vec<&String> = f.keys().chain(t.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                path.push(k.clone());
                walk_changes(path, f.get(k), t.get(k), out);
                path.pop();
            }
        }
        (a, b) if a == b => {}
        (a, b) => out.push(Change {
            path: path_string(path),
            from: a.cloned(),
            to: b.cloned(),
        }),
    }
}

/// The leaf paths a merge patch sets or deletes.
pub fn patch_leaves(patch: &Value) -> Vec<Vec<String>> {
    fn walk(p: &Value, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        match p {
            Value::Object(m) if !m.is_empty() || path.is_empty() => {
                for (k, v) in m {
                    path.push(k.clone());
                    walk(v, path, out);
                    path.pop();
                }
            }
            _ => out.push(path.clone()),
        }
    }
    let mut out = Vec::new();
    walk(patch, &mut Vec::new(), &mut out);
    out
}

/// The value at a key path, if present.
pub fn get_path<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(v, |cur, k| cur.get(k))
}

/// What an overlay row stores (its `body`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RulesOverlay {
    /// [`FORMAT`].
    pub format: String,
    /// Cumulative merge patch over the file's `[rules]` (JSON).
    pub patch: Value,
    /// The file's `[rules]` (JSON) when this version was made: what conflicts are judged
    /// against.
    pub base: Value,
    /// What the operator asked for (for the audit log: `{"kind": "tune", ...}`).
    #[serde(default)]
    pub change: Value,
}

impl RulesOverlay {
    /// Reads a stored body. Bodies of an earlier format that stored the whole section
    /// (`{"rules": {...}}`) are read as "these rules, over whatever the file now says".
    pub fn from_body(body: &Value, file_rules: &RulesConfig) -> Result<RulesOverlay, String> {
        if body.get("patch").is_some() {
            let o: RulesOverlay = serde_json::from_value(body.clone())
                .map_err(|e| format!("unreadable overlay body: {e}"))?;
            if o.format != FORMAT {
                return Err(format!(
                    "overlay format {:?} is not supported (this build reads {FORMAT:?})",
                    o.format
                ));
            }
            return Ok(o);
        }
        if let Some(rules) = body.get("rules") {
            let file = rules_json(file_rules);
            return Ok(RulesOverlay {
                format: FORMAT.into(),
                patch: diff(&file, rules),
                base: file,
                change: body.get("change").cloned().unwrap_or(Value::Null),
            });
        }
        Err("overlay body has neither a patch nor a rules section".into())
    }
}

/// The JSON of a rules section.
pub fn rules_json(rules: &RulesConfig) -> Value {
    serde_json::to_value(rules).unwrap_or(Value::Null)
}

/// Validates a rules section in the context of a config's cameras and models; errors are
/// `(key path, message)` with paths starting at `rules`.
pub fn validate_rules(rules: &RulesConfig, ctx: &Config) -> Result<(), Vec<(String, String)>> {
    let mut v = Validator::new();
    let c = ValidationContext {
        cameras: ctx.cameras.iter().map(|c| c.names()).collect(),
        models: ctx.models.keys().map(String::as_str).collect(),
    };
    rules.validate(&mut v, &c);
    if v.is_ok() {
        Ok(())
    } else {
        Err(v.problems().to_vec())
    }
}

/// The overlay that makes `new` the running rules over `file` (the patch is relative to
/// `file`). Fails when a merge patch cannot express the change (a value set to `null`).
pub fn make_overlay(
    file: &RulesConfig,
    new: &RulesConfig,
    change: Value,
) -> Result<RulesOverlay, String> {
    let base = rules_json(file);
    let patch = diff(&base, &rules_json(new));
    let back: RulesConfig = serde_json::from_value(patched(&base, &patch))
        .map_err(|e| format!("the change cannot be stored as a merge patch: {e}"))?;
    if &back != new {
        return Err(
            "the change cannot be stored as a merge patch (it sets a value to null)".into(),
        );
    }
    Ok(RulesOverlay {
        format: FORMAT.into(),
        patch,
        base,
        change,
    })
}

/// A key the file changed since the overlay was made and the overlay also sets: the
/// overlay wins, the operator is told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conflict {
    /// Key path (`rules.quiet_s`).
    pub path: String,
    /// The file's value when the overlay was made.
    pub base: Option<Value>,
    /// The file's value now.
    pub file: Option<Value>,
    /// The overlay's value (what runs).
    pub overlay: Option<Value>,
}

/// One validation problem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldError {
    /// Key path (`rules.cameras.ghost`).
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// File rules + overlay, resolved.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The rules that run: the patched rules when valid, else the file's.
    pub rules: RulesConfig,
    /// Whether the overlay is in force.
    pub applied: bool,
    /// Why it is not (empty when applied).
    pub errors: Vec<FieldError>,
    /// Keys the overlay sets that the file changed since.
    pub conflicts: Vec<Conflict>,
    /// File value → overlay value per key (what the overlay changes, or would change);
    /// paths start at `rules`.
    pub changes: Vec<Change>,
}

/// Resolves `file` + `overlay`, validating the result against `ctx` (the running config's
/// cameras and models).
pub fn resolve(file: &RulesConfig, overlay: &RulesOverlay, ctx: &Config) -> Resolved {
    let file_json = rules_json(file);
    let patched_json = patched(&file_json, &overlay.patch);
    let changes = changes(&file_json, &patched_json)
        .into_iter()
        .map(|c| Change {
            path: format!("rules.{}", c.path),
            ..c
        })
        .collect();
    let conflicts = patch_leaves(&overlay.patch)
        .into_iter()
        .filter_map(|p| {
            let base = get_path(&overlay.base, &p);
            let now = get_path(&file_json, &p);
            (base != now).then(|| Conflict {
                path: format!("rules.{}", path_string(&p)),
                base: base.cloned(),
                file: now.cloned(),
                overlay: get_path(&patched_json, &p).cloned(),
            })
        })
        .collect();
    let parsed = serde_path_to_error::deserialize::<_, RulesConfig>(patched_json)
        .map_err(|e| {
            vec![FieldError {
                path: format!("rules.{}", e.path()),
                message: e.inner().to_string(),
            }]
        })
        .and_then(|r| {
            validate_rules(&r, ctx).map(|_| r).map_err(|es| {
                es.into_iter()
                    .map(|(path, message)| FieldError { path, message })
                    .collect()
            })
        });
    match parsed {
        Ok(rules) => Resolved {
            rules,
            applied: true,
            errors: Vec::new(),
            conflicts,
            changes,
        },
        Err(errors) => Resolved {
            rules: file.clone(),
            applied: false,
            errors,
            conflicts,
            changes,
        },
    }
}

/// A value for humans: JSON with single-precision noise rounded away (`0.6`, not
/// `0.6000000238418579`), or `(unset)`.
pub fn show(v: Option<&Value>) -> String {
    match v {
        None => "(unset)".into(),
        Some(v) => tidy(v).to_string(),
    }
}

/// `v` with every non-integer number rounded to 6 decimals (config values are `f32`).
pub fn tidy(v: &Value) -> Value {
    match v {
        Value::Number(n) if n.is_f64() => n
            .as_f64()
            .and_then(|x| format!("{x:.6}").parse::<f64>().ok())
            .and_then(serde_json::Number::from_f64)
            .map_or_else(|| v.clone(), Value::Number),
        Value::Array(a) => Value::Array(a.iter().map(tidy).collect()),
        Value::Object(m) => Value::Object(m.iter().map(|(k, x)| (k.clone(), tidy(x))).collect()),
        _ => v.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CFG: &str = r#"
[[cameras]]
id = "tower1"
source = { kind = "file", path = "a.mp4" }
[[cameras]]
id = "tower2"
source = { kind = "file", path = "b.mp4" }
[rules]
quiet_s = 30
[rules.cameras.tower1.classes.smoke]
threshold = 0.5
"#;

    fn cfg(src: &str) -> Config {
        crate::parse(src, "t.toml", std::path::Path::new(".")).unwrap()
    }

    #[test]
    fn merge_patch_follows_rfc7386_examples() {
        // The examples of RFC 7386 appendix A.
        let cases = [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (
                json!({"a": "b"}),
                json!({"b": "c"}),
                json!({"a": "b", "b": "c"}),
            ),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (
                json!({"a": "b", "b": "c"}),
                json!({"a": null}),
                json!({"b": "c"}),
            ),
            (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": "c"}), json!({"a": ["b"]}), json!({"a": ["b"]})),
            (
                json!({"a": {"b": "c"}}),
                json!({"a": {"b": "d", "c": null}}),
                json!({"a": {"b": "d"}}),
            ),
            (
                json!({"a": [{"b": "c"}]}),
                json!({"a": [1]}),
                json!({"a": [1]}),
            ),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (json!({"a": "b"}), json!(["c"]), json!(["c"])),
            (json!({"a": "foo"}), json!(null), json!(null)),
            (json!({"a": "foo"}), json!("bar"), json!("bar")),
            (
                json!({"e": null}),
                json!({"a": 1}),
                json!({"e": null, "a": 1}),
            ),
            (
                json!([1, 2]),
                json!({"a": "b", "c": null}),
                json!({"a": "b"}),
            ),
            (
                json!({}),
                json!({"a": {"bb": {"ccc": null}}}),
                json!({"a": {"bb": {}}}),
            ),
        ];
        for (target, patch, want) in cases {
            assert_eq!(patched(&target, &patch), want, "{target} + {patch}");
        }
    }

    #[test]
    fn diff_round_trips_and_is_minimal() {
        let a = json!({"q": 30, "cams": {"t1": {"thr": 0.5, "masks": [1]}, "t2": {"x": 1}}, "gone": true});
        let b = json!({"q": 30, "cams": {"t1": {"thr": 0.6, "masks": [1, 2]}, "t2": {"x": 1}}, "new": {"k": 2}});
        let p = diff(&a, &b);
        assert_eq!(
            p,
            json!({"gone": null, "cams": {"t1": {"thr": 0.6, "masks": [1, 2]}}, "new": {"k": 2}})
        );
        assert_eq!(patched(&a, &p), b);
        assert_eq!(diff(&a, &a), json!({}));
        let leaves: Vec<String> = patch_leaves(&p).iter().map(|l| path_string(l)).collect();
        assert_eq!(
            leaves,
            vec!["cams.t1.masks", "cams.t1.thr", "gone", "new.k"]
        );
    }

    #[test]
    fn changes_list_leaf_paths_with_both_values() {
        let a = json!({"cameras": {"tower 1": {"threshold": 0.5}}, "quiet_s": 30});
        let b = json!({"cameras": {"tower 1": {"threshold": 0.6, "persistence": {"k": 2, "n": 4}}}, "quiet_s": 30});
        let c = changes(&a, &b);
        // A key that appears with an object value is one change (not one per inner key).
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].path, "cameras.\"tower 1\".persistence");
        assert_eq!(c[0].from, None);
        assert_eq!(c[0].to, Some(json!({"k": 2, "n": 4})));
        assert_eq!(c[1].path, "cameras.\"tower 1\".threshold");
        assert_eq!(c[1].from, Some(json!(0.5)));
        assert_eq!(c[1].to, Some(json!(0.6)));
        assert_eq!(show(c[0].from.as_ref()), "(unset)");
        assert_eq!(show(Some(&json!(0.6f32))), "0.6");
        assert_eq!(show(Some(&json!({"k": [0.35f32, 2]}))), r#"{"k":[0.35,2]}"#);
    }

    fn tuned(file: &RulesConfig, thr: f32) -> RulesConfig {
        let mut r = file.clone();
        r.cameras
            .entry("tower1".into())
            .or_default()
            .classes
            .entry("smoke".into())
            .or_default()
            .threshold = Some(thr);
        r
    }

    #[test]
    fn overlay_survives_an_unrelated_file_edit() {
        let c = cfg(CFG);
        let ov = make_overlay(&c.rules, &tuned(&c.rules, 0.7), json!({"kind": "tune"})).unwrap();
        // The file changes quiet_s only.
        let edited = cfg(&CFG.replace("quiet_s = 30", "quiet_s = 40"));
        let r = resolve(&edited.rules, &ov, &edited);
        assert!(r.applied, "{:?}", r.errors);
        assert_eq!(r.rules.quiet_s, 40.0);
        assert_eq!(
            r.rules.cameras["tower1"].classes["smoke"].threshold,
            Some(0.7)
        );
        assert!(r.conflicts.is_empty(), "{:?}", r.conflicts);
        assert_eq!(r.changes.len(), 1);
        assert_eq!(
            r.changes[0].path,
            "rules.cameras.tower1.classes.smoke.threshold"
        );
    }

    #[test]
    fn same_key_edited_in_the_file_is_a_conflict_the_overlay_wins() {
        let c = cfg(CFG);
        let ov = make_overlay(&c.rules, &tuned(&c.rules, 0.7), Value::Null).unwrap();
        let edited = cfg(&CFG.replace("threshold = 0.5", "threshold = 0.55"));
        let r = resolve(&edited.rules, &ov, &edited);
        assert!(r.applied);
        assert_eq!(
            r.rules.cameras["tower1"].classes["smoke"].threshold,
            Some(0.7)
        );
        assert_eq!(r.conflicts.len(), 1);
        let k = &r.conflicts[0];
        assert_eq!(k.path, "rules.cameras.tower1.classes.smoke.threshold");
        let num = |v: &Option<Value>| {
            v.as_ref()
                .and_then(Value::as_f64)
                .map(|x| (x * 100.0).round())
        };
        assert_eq!(
            (num(&k.base), num(&k.file), num(&k.overlay)),
            (Some(50.0), Some(55.0), Some(70.0))
        );
    }

    #[test]
    fn a_patch_that_no_longer_validates_keeps_the_file_rules() {
        // The overlay sets a keep_threshold; the file then raises the threshold... the
        // overlay lowers threshold under the file's new keep_threshold.
        let c = cfg(CFG);
        let ov = make_overlay(&c.rules, &tuned(&c.rules, 0.3), Value::Null).unwrap();
        let edited = cfg(&CFG.replace("threshold = 0.5", "threshold = 0.5\nkeep_threshold = 0.45"));
        let r = resolve(&edited.rules, &ov, &edited);
        assert!(!r.applied);
        assert_eq!(r.rules, edited.rules);
        assert!(
            r.errors[0].path.ends_with("smoke.keep_threshold"),
            "{:?}",
            r.errors
        );
        // A camera removed from the file: its overrides no longer validate.
        let c2 = cfg(CFG);
        let mut r2 = c2.rules.clone();
        r2.cameras
            .entry("tower2".into())
            .or_default()
            .classes
            .entry("fire".into())
            .or_default()
            .threshold = Some(0.9);
        let ov2 = make_overlay(&c2.rules, &r2, Value::Null).unwrap();
        let one_cam = cfg(&CFG.replace(
            "[[cameras]]\nid = \"tower2\"\nsource = { kind = \"file\", path = \"b.mp4\" }\n",
            "",
        ));
        let r = resolve(&one_cam.rules, &ov2, &one_cam);
        assert!(!r.applied);
        assert!(
            r.errors.iter().any(|e| e.path.contains("tower2")),
            "{:?}",
            r.errors
        );
        // A patch whose value has the wrong type is reported with its path.
        let bad = RulesOverlay {
            patch: json!({"quiet_s": "long"}),
            ..ov
        };
        let r = resolve(&c.rules, &bad, &c);
        assert!(!r.applied);
        assert_eq!(r.errors[0].path, "rules.quiet_s");
    }

    #[test]
    fn legacy_bodies_with_a_whole_section_read_as_a_patch() {
        let c = cfg(CFG);
        let mut want = c.rules.clone();
        want.quiet_s = 45.0;
        let body = json!({"change": {"kind": "rules"}, "rules": rules_json(&want)});
        let ov = RulesOverlay::from_body(&body, &c.rules).unwrap();
        assert_eq!(ov.patch, json!({"quiet_s": 45.0}));
        let r = resolve(&c.rules, &ov, &c);
        assert_eq!(r.rules, want);
        let stored = serde_json::to_value(&ov).unwrap();
        assert_eq!(RulesOverlay::from_body(&stored, &c.rules).unwrap(), ov);
        assert!(RulesOverlay::from_body(&json!({"x": 1}), &c.rules).is_err());
        let mut other = stored.clone();
        other["format"] = json!("something-else");
        assert!(RulesOverlay::from_body(&other, &c.rules).is_err());
    }

    #[test]
    fn make_overlay_round_trips_masks_and_zones() {
        let c = cfg(CFG);
        let mut r = c.rules.clone();
        r.cameras
            .entry("tower2".into())
            .or_default()
            .masks
            .push(crate::rules::MaskConfig {
                polygon: vec![[0.1, 0.1], [0.3, 0.1], [0.3, 0.3], [0.1, 0.3]],
                preset: None,
                classes: vec!["smoke".into()],
            });
        let ov = make_overlay(&c.rules, &r, Value::Null).unwrap();
        assert_eq!(resolve(&c.rules, &ov, &c).rules, r);
        // Removing the file's override goes through a null in the patch.
        let mut back = c.rules.clone();
        back.cameras.remove("tower1");
        let ov = make_overlay(&c.rules, &back, Value::Null).unwrap();
        assert_eq!(ov.patch, json!({"cameras": {"tower1": null}}));
        assert_eq!(resolve(&c.rules, &ov, &c).rules, back);
    }

    #[test]
    fn the_default_configs_rules_round_trip_through_a_patch() {
        let c = crate::load_default().unwrap();
        let mut r = c.rules.clone();
        r.quiet_s += 1.0;
        let ov = make_overlay(&c.rules, &r, Value::Null).unwrap();
        assert_eq!(ov.patch, json!({"quiet_s": c.rules.quiet_s + 1.0}));
        let back = resolve(&c.rules, &ov, &c);
        assert!(back.applied, "{:?}", back.errors);
        assert_eq!(back.rules, r);
    }
}
