//! A Procfile (`name: command` lines, as foreman, honcho and overmind read
//! them) as a stack: each line a service with one command; a command that
//! uses `$PORT` gets `port: auto`.

use super::emit::{self, Port, Program, Service, Stack};

/// The stack, and a warning for each line that cannot carry over.
pub fn convert(text: &str) -> (Stack, Vec<String>) {
    let mut stack = Stack::default();
    let mut warnings = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((raw_name, command)) = line
            .split_once(':')
            .map(|(n, c)| (n.trim(), c.trim()))
            .filter(|(n, c)| !n.is_empty() && !c.is_empty() && !n.contains(char::is_whitespace))
        else {
            warnings.push(format!(
                "line {}: not `name: command`, left out: {line}",
                n + 1
            ));
            continue;
        };
        let name = emit::name(raw_name);
        if name != raw_name {
            warnings.push(format!("line {}: `{raw_name}` is named `{name}`", n + 1));
        }
        if stack.services.iter().any(|s| s.name == name) {
            warnings.push(format!(
                "line {}: `{name}` is defined again, left out",
                n + 1
            ));
            continue;
        }
        let uses_port = command.contains("$PORT") || command.contains("${PORT}");
        stack.services.push(Service {
            name,
            command: Program::Shell(emit::literal(command)),
            port: uses_port.then_some(Port::Auto),
            ..Service::default()
        });
    }
    (stack, warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_become_services() {
        let (stack, warnings) = convert(
            "# a comment\n\nweb: bundle exec rails s -p $PORT\nworker:   sidekiq -c ${THREADS}\nrelease: rake db:migrate\nnot a line\nweb: again\n",
        );
        let got: Vec<(&str, &Program, Option<Port>)> = stack
            .services
            .iter()
            .map(|s| (s.name.as_str(), &s.command, s.port))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "web",
                    &Program::Shell("bundle exec rails s -p $PORT".into()),
                    Some(Port::Auto)
                ),
                (
                    "worker",
                    &Program::Shell("sidekiq -c $${THREADS}".into()),
                    None
                ),
                ("release", &Program::Shell("rake db:migrate".into()), None),
            ]
        );
        assert_eq!(
            warnings,
            vec![
                "line 6: not `name: command`, left out: not a line".to_owned(),
                "line 7: `web` is defined again, left out".to_owned(),
            ]
        );
    }
}
