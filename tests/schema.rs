//! schemas/stack.schema.json is generated from the raw structs; this test
//! keeps the checked-in file in step with them.

use std::path::Path;

fn generated() -> String {
    let schema = schemars::schema_for!(orch::config::RawStack);
    let mut text = serde_json::to_string_pretty(&schema).expect("a schema is JSON");
    text.push('\n');
    text
}

#[test]
fn checked_in_schema_is_up_to_date() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/stack.schema.json");
    let want = generated();
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &want).expect("write the schema");
        return;
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "{} is out of date with the types in src/config/raw.rs; \
         regenerate it with `UPDATE_SCHEMA=1 cargo test --test schema` and review the diff",
        path.display()
    );
}

/// A YAML file as JSON, read with orch's own YAML reader.
fn yaml_to_json(text: &str) -> serde_json::Value {
    use orch::config::yaml::{self, Node, Value};
    use serde_json::Value as Json;
    fn convert(node: &Node) -> Json {
        match &node.value {
            Value::Null => Json::Null,
            Value::Bool(b) => Json::Bool(*b),
            Value::Int(i) => Json::from(*i),
            Value::Float(f) => Json::from(*f),
            Value::Str(s) => Json::String(s.text.clone()),
            Value::Seq(items) => Json::Array(items.iter().map(convert).collect()),
            Value::Map(entries) => Json::Object(
                entries
                    .iter()
                    .map(|(k, v)| (yaml::key_text(k), convert(v)))
                    .collect(),
            ),
        }
    }
    convert(&yaml::parse(text).expect("the file is YAML"))
}

fn validator() -> jsonschema::Validator {
    let schema: serde_json::Value = serde_json::from_str(&generated()).expect("the schema is JSON");
    jsonschema::validator_for(&schema).expect("the schema is a valid JSON Schema")
}

#[test]
fn examples_match_the_schema() {
    let validator = validator();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut seen = 0;
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("read examples/")
        .map(|e| e.expect("a directory entry").path())
        .collect();
    paths.extend(
        std::fs::read_dir(dir.join("composed"))
            .expect("read examples/composed/")
            .map(|e| e.expect("a directory entry").path()),
    );
    for path in paths {
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read the example");
        let errors: Vec<String> = validator
            .iter_errors(&yaml_to_json(&text))
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
        seen += 1;
    }
    assert!(seen >= 5, "examples/ has its stacks");
}

#[test]
fn the_schema_rejects_what_orch_rejects() {
    let validator = validator();
    let bad = [
        "services:\n  a:\n    commands:\n      x: { command: x, prot: 1 }\n",
        "services:\n  a:\n    commands:\n      x: { command: x, port: 70000 }\n",
        "services:\n  a:\n    commands:\n      x: { port: 8000 }\n",
        "services:\n  a:\n    commands:\n      x: { command: x, when_to_run: sometimes }\n",
        "services:\n  a:\n    commands:\n      x: { command: x, stop_timeout: 10 }\n",
        "services:\n  a:\n    commands:\n      x: { command: [] }\n",
        "port_range: 8000\nservices: {}\n",
        "name: x\n",
    ];
    for text in bad {
        assert!(!validator.is_valid(&yaml_to_json(text)), "{text}");
    }
}

#[test]
fn the_schema_accepts_numbers_and_booleans_as_env_values_as_orch_does() {
    let text = "\
env: { DEBUG: true }
services:
  api:
    env: { WORKERS: 4 }
    commands:
      web: { command: serve, env: { RATIO: 0.5 } }
";
    orch::model::Stack::from_text(Path::new("/tmp/stack.yaml"), text).expect("orch reads it");
    let errors: Vec<String> = validator()
        .iter_errors(&yaml_to_json(text))
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    // Not just anything: a list is no environment value.
    assert!(!validator().is_valid(&yaml_to_json(
        "services:\n  a:\n    env: { X: [1] }\n    commands:\n      c: { command: c }\n"
    )));
}
