//! Parse, validate and order a generated stack of 10,000 services with 3
//! commands each: `Stack::from_text`, from text to the immutable model with
//! its DAG.
//!
//!     cargo bench --bench load -- --quick
//!
//! docs/stack-file.md notes the figure.

use std::fmt::Write as _;
use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use orch::model::Stack;

const SERVICES: usize = 10_000;

/// Service `i` depends on `(i - 1) / 2` and `i / 3` (a wide, shallow graph
/// of about 20,000 edges in 14 waves), runs a web server on an auto port, a
/// worker that reads both dependencies' locators, and a `once` migration; it
/// provides one locator built from its own port.
fn generate(services: usize) -> String {
    let mut text = String::from(
        "name: generated\nport_range: 20000-40000\nenv:\n  LOG_LEVEL: info\n  REGION: ${REGION:-local}\nservices:\n",
    );
    for i in 0..services {
        let _ = writeln!(text, "  s{i}:");
        let deps: Vec<usize> = if i == 0 {
            Vec::new()
        } else {
            let mut d = vec![(i - 1) / 2, i / 3];
            d.dedup();
            d
        };
        if !deps.is_empty() {
            let names: Vec<String> = deps.iter().map(|d| format!("s{d}")).collect();
            let _ = writeln!(text, "    depends_on: [{}]", names.join(", "));
        }
        let _ = writeln!(text, "    env: {{ SERVICE_INDEX: \"{i}\" }}");
        text.push_str("    commands:\n");
        let _ = writeln!(
            text,
            "      web:\n        command: serve --port ${{port}} --region ${{REGION}}\n        port: auto\n        ready: {{ http: \"http://127.0.0.1:${{port}}/health\", interval: 100ms }}"
        );
        let upstream: Vec<String> = deps.iter().map(|d| format!("${{S{d}_URL}}")).collect();
        let _ = writeln!(
            text,
            "      worker: {{ command: [worker, --upstream, \"{}\", --self, \"${{web.port}}\"], respawn_backoff: 200ms }}",
            upstream.join(",")
        );
        let _ = writeln!(
            text,
            "      migrate: {{ command: \"migrate --to ${{S{i}_URL}}\", when_to_run: once }}"
        );
        let _ = writeln!(
            text,
            "    provides:\n      S{i}_URL: http://127.0.0.1:${{web.port}}/s{i}"
        );
    }
    text
}

fn load(c: &mut Criterion) {
    let text = generate(SERVICES);
    let file = Path::new("/generated/stack.yaml");
    let stack = Stack::from_text(file, &text).expect("the generated stack is valid");
    assert_eq!(stack.services.len(), SERVICES);
    assert_eq!(stack.members().count(), 3 * SERVICES);
    assert_eq!(stack.dag.waves().len(), 14);

    let mut group = c.benchmark_group("load");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.bench_function("10000 services x 3 commands", |b| {
        b.iter(|| Stack::from_text(file, black_box(&text)).expect("valid"));
    });
    // Its first two stages on their own: the spanned YAML tree, then the raw structs.
    group.bench_function("yaml tree only", |b| {
        b.iter(|| orch::config::yaml::parse(black_box(&text)).expect("valid"));
    });
    group.bench_function("yaml tree and raw structs", |b| {
        b.iter(|| orch::config::load(black_box(&text)).0.expect("valid"));
    });
    group.finish();
}

criterion_group!(benches, load);
criterion_main!(benches);
