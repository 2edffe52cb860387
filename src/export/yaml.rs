//! JSON values written as block-style YAML, the way Kubernetes manifests
//! are usually read. Strings are written plain only when no YAML reader
//! (1.1 or 1.2) could take them for anything else; multi-line strings become
//! literal blocks; everything else is double-quoted with JSON's escapes,
//! which YAML reads the same way.

use serde_json::Value;

/// One YAML document (no `---`), ending with a newline.
pub fn document(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => mapping(&mut out, map, 0, false),
        Value::Array(items) if !items.is_empty() => sequence(&mut out, items, 0),
        scalar => {
            out.push_str(&inline(scalar, 0));
            out.push('\n');
        }
    }
    out
}

/// `after_dash`: the mapping is a sequence item, its first key follows `- `.
fn mapping(
    out: &mut String,
    map: &serde_json::Map<String, Value>,
    indent: usize,
    after_dash: bool,
) {
    for (i, (key, value)) in map.iter().enumerate() {
        if i > 0 || !after_dash {
            push_indent(out, indent);
        }
        out.push_str(&string(key, indent));
        out.push(':');
        nested(out, value, indent, false);
    }
}

fn sequence(out: &mut String, items: &[Value], indent: usize) {
    for item in items {
        push_indent(out, indent);
        out.push('-');
        nested(out, item, indent, true);
    }
}

/// What follows `key:` or, `after_dash`, a sequence's `-`.
fn nested(out: &mut String, value: &Value, indent: usize, after_dash: bool) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            out.push(if after_dash { ' ' } else { '\n' });
            mapping(out, map, indent + 2, after_dash);
        }
        Value::Array(items) if !items.is_empty() => {
            out.push('\n');
            sequence(out, items, indent + 2);
        }
        scalar => {
            out.push(' ');
            out.push_str(&inline(scalar, indent + 2));
            out.push('\n');
        }
    }
}

fn push_indent(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

/// A scalar or an empty collection; a literal block's lines at `indent`.
fn inline(value: &Value, indent: usize) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => string(s, indent),
        Value::Array(_) => "[]".into(),
        Value::Object(_) => "{}".into(),
    }
}

fn string(s: &str, indent: usize) -> String {
    if plain(s) {
        s.to_owned()
    } else if let Some(block) = literal_block(s, indent) {
        block
    } else {
        serde_json::to_string(s).expect("a string is JSON")
    }
}

/// Words YAML 1.1 readers take for booleans or null.
const SPECIAL: &[&str] = &[
    "y", "n", "yes", "no", "true", "false", "on", "off", "null", "~",
];

fn plain(s: &str) -> bool {
    let mut chars = s.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    (first.is_ascii_alphabetic() || first == '/' || first == '_')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./-:".contains(c))
        && !s.ends_with(':')
        && !SPECIAL.contains(&s.to_ascii_lowercase().as_str())
}

/// `|` with the text's lines, when the text has several and nothing a block
/// cannot hold as it is.
fn literal_block(s: &str, indent: usize) -> Option<String> {
    let body = s.trim_end_matches('\n');
    let trailing = s.len() - body.len();
    let fits = s.contains('\n')
        && !body.is_empty()
        && !body.starts_with([' ', '\n'])
        && body.chars().all(|c| c == '\n' || !c.is_control())
        && !body.contains(['\u{feff}', '\u{2028}', '\u{2029}'])
        && body
            .split('\n')
            .all(|line| line.is_empty() || !line.trim().is_empty());
    if !fits {
        return None;
    }
    let mut out = String::from(match trailing {
        0 => "|-",
        1 => "|",
        _ => "|+",
    });
    for line in body.split('\n') {
        out.push('\n');
        if !line.is_empty() {
            push_indent(&mut out, indent);
            out.push_str(line);
        }
    }
    for _ in 1..trailing {
        out.push('\n');
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn block_style() {
        let v = json!({
            "kind": "Deployment",
            "metadata": {"name": "db-pg", "labels": {"app.kubernetes.io/name": "db-pg"}},
            "spec": {"replicas": 2, "containers": [
                {"name": "pg", "args": ["-p", "8300", "yes", ""], "env": []},
            ]},
        });
        assert_eq!(
            document(&v),
            "kind: Deployment\nmetadata:\n  name: db-pg\n  labels:\n    app.kubernetes.io/name: db-pg\n\
             spec:\n  replicas: 2\n  containers:\n    - name: pg\n      args:\n        - \"-p\"\n        - \"8300\"\n\
             \x20       - \"yes\"\n        - \"\"\n      env: []\n"
        );
    }

    #[test]
    fn strings_that_need_care() {
        for (s, want) in [
            ("busybox:1.36", "busybox:1.36"),
            ("1:30", "\"1:30\""),
            ("On", "\"On\""),
            ("a: b", "\"a: b\""),
            ("x #y", "\"x #y\""),
            ("tab\there", "\"tab\\there\""),
            ("line\n", "|\n  line"),
            ("a\nb", "|-\n  a\n  b"),
            ("a\n\n  b\n\n", "|+\n  a\n\n    b\n"),
            (" lead\nx", "\" lead\\nx\""),
            ("a\n  \nb", "\"a\\n  \\nb\""),
        ] {
            assert_eq!(string(s, 2), want, "{s:?}");
        }
    }
}
