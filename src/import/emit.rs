//! What an import makes, and how it is written as a stack file.

use std::fmt::Write as _;

/// A stack file to write.
#[derive(Debug, Default)]
pub struct Stack {
    /// The comment lines at the top.
    pub header: Vec<String>,
    pub services: Vec<Service>,
}

/// A service of one command, named as the service.
#[derive(Debug, Default)]
pub struct Service {
    pub name: String,
    pub depends_on: Vec<String>,
    pub profiles: Vec<String>,
    /// Paths, each with whether it is required.
    pub env_file: Vec<(String, bool)>,
    pub env: Vec<(String, String)>,
    pub command: Program,
    pub port: Option<Port>,
    pub working_dir: Option<String>,
    pub once: bool,
    /// `respawn_count`, with a note on where it came from.
    pub respawn_count: Option<(u32, String)>,
    pub ready: Option<Ready>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Program {
    Shell(String),
    Argv(Vec<String>),
}

impl Default for Program {
    fn default() -> Self {
        Program::Shell(String::new())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    Auto,
    Fixed(u16),
}

/// A `ready: { command }` probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ready {
    pub command: Program,
    pub interval: Option<String>,
    pub timeout: Option<String>,
}

/// A string as a YAML scalar: plain when that reads back as the same
/// string, else double-quoted (JSON's escapes are YAML's).
pub fn scalar(s: &str) -> String {
    let special = matches!(
        s.to_ascii_lowercase().as_str(),
        "true" | "false" | "yes" | "no" | "on" | "off" | "y" | "n" | "null" | "~"
    );
    let numeric = s.parse::<f64>().is_ok() || s.starts_with(['+', '-', '.']);
    let plain = !s.is_empty()
        && !special
        && !numeric
        && s.starts_with(|c: char| c.is_ascii_alphanumeric() || "/_$".contains(c))
        && !s.ends_with([' ', ':'])
        && !s.contains(": ")
        && !s.contains(" #")
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || " _./:@%+=$-".contains(c));
    if plain {
        s.to_owned()
    } else {
        serde_json::to_string(s).expect("a string is JSON")
    }
}

/// A list written inline: `[a, "b c"]`.
fn flow(items: &[String]) -> String {
    let items: Vec<String> = items
        .iter()
        .map(|i| {
            let s = scalar(i);
            if s.contains(' ') && !s.starts_with('"') {
                serde_json::to_string(i).expect("a string is JSON")
            } else {
                s
            }
        })
        .collect();
    format!("[{}]", items.join(", "))
}

fn program(p: &Program) -> String {
    match p {
        Program::Shell(text) => scalar(text),
        Program::Argv(argv) => flow(argv),
    }
}

impl Stack {
    pub fn render(&self) -> String {
        let mut out = String::new();
        for line in &self.header {
            let _ = writeln!(out, "# {line}");
        }
        out.push_str("services:");
        if self.services.is_empty() {
            out.push_str(" {}");
        }
        out.push('\n');
        for s in &self.services {
            let _ = writeln!(out, "  {}:", s.name);
            if !s.depends_on.is_empty() {
                let _ = writeln!(out, "    depends_on: {}", flow(&s.depends_on));
            }
            if !s.profiles.is_empty() {
                let _ = writeln!(out, "    profiles: {}", flow(&s.profiles));
            }
            if !s.env_file.is_empty() {
                out.push_str("    env_file:\n");
                for (path, required) in &s.env_file {
                    if *required {
                        let _ = writeln!(out, "      - {}", scalar(path));
                    } else {
                        let _ =
                            writeln!(out, "      - {{ path: {}, required: false }}", scalar(path));
                    }
                }
            }
            if !s.env.is_empty() {
                out.push_str("    env:\n");
                for (key, value) in &s.env {
                    let _ = writeln!(
                        out,
                        "      {key}: {}",
                        serde_json::to_string(value).expect("JSON")
                    );
                }
            }
            out.push_str("    commands:\n");
            let _ = writeln!(out, "      {}:", s.name);
            let _ = writeln!(out, "        command: {}", program(&s.command));
            match s.port {
                Some(Port::Auto) => out.push_str("        port: auto\n"),
                Some(Port::Fixed(port)) => {
                    let _ = writeln!(out, "        port: {port}");
                }
                None => {}
            }
            if let Some(dir) = &s.working_dir {
                let _ = writeln!(out, "        working_dir: {}", scalar(dir));
            }
            if s.once {
                out.push_str("        when_to_run: once\n");
            }
            if let Some((count, note)) = &s.respawn_count {
                let _ = writeln!(out, "        respawn_count: {count}  # {note}");
            }
            if let Some(ready) = &s.ready {
                out.push_str("        ready:\n");
                let _ = writeln!(out, "          command: {}", program(&ready.command));
                if let Some(interval) = &ready.interval {
                    let _ = writeln!(out, "          interval: {interval}");
                }
                if let Some(timeout) = &ready.timeout {
                    let _ = writeln!(out, "          timeout: {timeout}");
                }
            }
        }
        out
    }
}

/// Escape `text` so that orch's templates leave it as it is: a `$` that
/// would start `${...}` or `$$` is doubled.
pub fn literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '$' && matches!(chars.peek(), Some('{' | '$') | None) {
            out.push('$');
        }
    }
    out
}

/// A service or command name orch accepts: letters, digits, `_` and `-`,
/// starting with a letter or digit; other characters become `-`.
pub fn name(raw: &str) -> String {
    let mut out: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if !out.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        out.insert(0, 's');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_read_back_as_the_same_string() {
        let cases = [
            ("web", "web"),
            (
                "bundle exec rails s -p $PORT",
                "bundle exec rails s -p $PORT",
            ),
            ("/usr/bin/x", "/usr/bin/x"),
            ("true", "\"true\""),
            ("8080", "\"8080\""),
            ("-m", "\"-m\""),
            ("a: b", "\"a: b\""),
            ("say \"hi\"", "\"say \\\"hi\\\"\""),
            ("x # y", "\"x # y\""),
            ("", "\"\""),
            ("{a}", "\"{a}\""),
        ];
        for (text, want) in cases {
            assert_eq!(scalar(text), want, "{text}");
        }
        assert_eq!(
            flow(&["a".into(), "b c".into(), "-x".into()]),
            "[a, \"b c\", \"-x\"]"
        );
    }

    #[test]
    fn literal_text_survives_templates() {
        assert_eq!(literal("echo $HOME"), "echo $HOME");
        assert_eq!(literal("echo ${HOME}"), "echo $${HOME}");
        assert_eq!(literal("echo $$"), "echo $$$$");
        assert_eq!(literal("cost 5$"), "cost 5$$");
    }

    #[test]
    fn names_are_made_valid() {
        assert_eq!(name("web"), "web");
        assert_eq!(name("web.1"), "web-1");
        assert_eq!(name("_x"), "s_x");
    }
}
