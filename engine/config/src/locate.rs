//! Finds where a key path lives in the TOML text.

use toml_edit::{ImDocument, Item};

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

/// Splits `cameras[2].source.url` into segments. Quoted keys (`models."smoke-fire"`) keep
/// their inner text.
pub(crate) fn split_path(path: &str) -> Vec<Seg> {
    let mut segs = Vec::new();
    let mut cur = String::new();
    let mut chars = path.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                for c in chars.by_ref() {
                    if c == '"' {
                        break;
                    }
                    cur.push(c);
                }
            }
            '.' => {
                if !cur.is_empty() {
                    segs.push(Seg::Key(std::mem::take(&mut cur)));
                }
            }
            '[' => {
                if !cur.is_empty() {
                    segs.push(Seg::Key(std::mem::take(&mut cur)));
                }
                let mut num = String::new();
                for c in chars.by_ref() {
                    if c == ']' {
                        break;
                    }
                    num.push(c);
                }
                if let Ok(i) = num.trim().parse() {
                    segs.push(Seg::Index(i));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        segs.push(Seg::Key(cur));
    }
    segs
}

/// Byte offset → 1-based (line, column).
pub(crate) fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(src.len());
    let before = &src[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map_or(offset, |nl| offset - nl - 1) + 1;
    (line, col)
}

/// The byte offset of the deepest part of `path` that exists in the document.
pub(crate) fn locate(doc: &ImDocument<&str>, path: &str) -> Option<usize> {
    find_item(doc.as_item(), &split_path(path), None)
}

fn span_start(span: Option<std::ops::Range<usize>>) -> Option<usize> {
    span.map(|s| s.start)
}

fn find_item(item: &Item, segs: &[Seg], best: Option<usize>) -> Option<usize> {
    let Some((seg, rest)) = segs.split_first() else {
        return best;
    };
    match (item, seg) {
        (Item::Table(t), Seg::Key(k)) => match t.get_key_value(k) {
            Some((key, next)) => {
                let here = span_start(key.span()).or_else(|| span_start(next.span()));
                find_item(next, rest, here.or(best))
            }
            None => best,
        },
        (Item::ArrayOfTables(a), Seg::Index(i)) => match a.get(*i) {
            Some(t) => {
                let here = span_start(t.span()).or_else(|| {
                    t.iter()
                        .next()
                        .and_then(|(k, _)| t.key(k))
                        .and_then(|key| span_start(key.span()))
                });
                match rest.split_first() {
                    Some((Seg::Key(k), rest2)) => match t.get_key_value(k) {
                        Some((key, next)) => {
                            let h2 = span_start(key.span());
                            find_item(next, rest2, h2.or(here).or(best))
                        }
                        None => here.or(best),
                    },
                    _ => here.or(best),
                }
            }
            None => best,
        },
        (Item::Value(v), _) => find_value(v, segs, best),
        _ => best,
    }
}

fn find_value(v: &toml_edit::Value, segs: &[Seg], best: Option<usize>) -> Option<usize> {
    let Some((seg, rest)) = segs.split_first() else {
        return best;
    };
    match (v, seg) {
        (toml_edit::Value::InlineTable(t), Seg::Key(k)) => match t.get_key_value(k) {
            Some((key, next)) => {
                let here = span_start(key.span()).or_else(|| span_start(next.span()));
                find_item(next, rest, here.or(best))
            }
            None => best,
        },
        (toml_edit::Value::Array(a), Seg::Index(i)) => match a.get(*i) {
            Some(next) => find_value(next, rest, span_start(next.span()).or(best)),
            None => best,
        },
        _ => best,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_paths() {
        assert_eq!(
            split_path("cameras[2].source.url"),
            vec![
                Seg::Key("cameras".into()),
                Seg::Index(2),
                Seg::Key("source".into()),
                Seg::Key("url".into())
            ]
        );
        assert_eq!(
            split_path("models.\"smoke.fire\".tile"),
            vec![
                Seg::Key("models".into()),
                Seg::Key("smoke.fire".into()),
                Seg::Key("tile".into())
            ]
        );
    }

    #[test]
    fn locates_keys() {
        let src = "[engine]\ndata_dir = \"x\"\n\n[[cameras]]\nid = \"a\"\n\n[[cameras]]\nid = \"b\"\nfps = 3\n";
        let doc = ImDocument::parse(src).expect("valid toml");
        let off = locate(&doc, "cameras[1].fps").expect("found");
        assert_eq!(line_col(src, off), (9, 1));
        let off = locate(&doc, "engine.data_dir").expect("found");
        assert_eq!(line_col(src, off), (2, 1));
    }
}
