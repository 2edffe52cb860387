//! Properties that hold for every input: templates, the DAG and ports.

mod common;

use orch::model::dag::Dag;
use orch::model::template::{self, Piece, Ref, TemplateError};
use orch::model::Text;
use proptest::prelude::*;

/// Text that is likely to contain template syntax.
fn template_text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("$".to_owned()),
            Just("$$".to_owned()),
            Just("${".to_owned()),
            Just("}".to_owned()),
            Just(":-".to_owned()),
            Just(".".to_owned()),
            Just("port".to_owned()),
            "[a-zA-Z_0-9 ]{0,4}",
            any::<char>().prop_map(String::from),
        ],
        0..24,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    /// Parsing never panics; the references it finds are `${...}` slices
    /// of the text, in order and apart.
    #[test]
    fn the_template_parser_never_panics(text in template_text()) {
        match template::parse(&text) {
            Ok(pieces) => {
                let mut end = 0;
                for piece in pieces {
                    if let Piece::Ref { at, len, .. } = piece {
                        prop_assert!(at >= end);
                        let slice = &text[at..at + len];
                        prop_assert!(slice.starts_with("${") && slice.ends_with('}'), "{}", slice);
                        end = at + len;
                    }
                }
            }
            Err(e) => prop_assert!(e.at + e.len <= text.len(), "{:?}", e),
        }
    }

    /// Any text with its `$` doubled expands to itself, whatever it holds.
    #[test]
    fn doubled_dollars_round_trip(text in template_text()) {
        let escaped = text.replace('$', "$$");
        let expanded = template::expand(&escaped, |_| panic!("no reference in escaped text"));
        prop_assert_eq!(expanded.ok(), Some(Text::literal(text)));
    }

    /// Text without `${` has no references and expands to itself, with each `$$` made `$`.
    #[test]
    fn text_without_references_is_kept(text in "[^{]{0,40}") {
        let expanded = template::expand(&text, |_| panic!("no reference here"));
        let mut want = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            want.push(c);
            if c == '$' && chars.peek() == Some(&'$') {
                chars.next();
            }
        }
        prop_assert_eq!(expanded.ok(), Some(Text::literal(want)));
    }

    /// An error points inside the text.
    #[test]
    fn errors_point_inside_the_text(text in template_text()) {
        if let Err(e) = template::expand(&text, |_| Err(template::TemplateError::new("no"))) {
            prop_assert!(e.at + e.len <= text.len());
            prop_assert!(text[e.at..].starts_with("${"), "the error is at a reference");
        }
    }
}

/// Text for a default: anything but the `}` that would end it.
fn default_text() -> impl Strategy<Value = String> {
    template_text().prop_map(|text| text.replace('}', ""))
}

/// `${NAME}` and `${NAME:-default}` resolved against one variable.
fn expand_with(text: &str, var: Option<&str>) -> Result<String, TemplateError> {
    template::expand(text, |r| match r {
        Ref::Name { name, default } => {
            let found = (*name == "VAR").then(|| var.map(str::to_owned)).flatten();
            template::or_default(found, *default)
                .map(Text::literal)
                .ok_or_else(|| TemplateError::new("unset"))
        }
        _ => Err(TemplateError::new("not a variable")),
    })
    .map(|text| text.loopback())
}

proptest! {
    /// A default written with its `$` doubled is given back as it was
    /// meant, when the variable is unset or empty; a set variable wins.
    #[test]
    fn defaults_round_trip(meant in default_text(), value in "[a-z$]{1,8}") {
        let text = format!("<${{VAR:-{}}}>", meant.replace('$', "$$"));
        prop_assert_eq!(expand_with(&text, None), Ok(format!("<{meant}>")));
        prop_assert_eq!(expand_with(&text, Some("")), Ok(format!("<{meant}>")));
        prop_assert_eq!(expand_with(&text, Some(&value)), Ok(format!("<{value}>")));
        // Without a default, an empty value is the value.
        prop_assert_eq!(expand_with("<${VAR}>", Some("")), Ok("<>".to_owned()));
    }
}

/// A random DAG: each service may depend on any service with a lower index,
/// then the indices are shuffled so file order is not the start order.
fn dag_deps() -> impl Strategy<Value = Vec<Vec<usize>>> {
    (1usize..40)
        .prop_flat_map(|n| {
            let edges = prop::collection::vec(prop::collection::vec(any::<bool>(), n), n);
            (edges, Just((0..n).collect::<Vec<_>>()).prop_shuffle())
        })
        .prop_map(|(edges, perm)| {
            let n = perm.len();
            let mut deps = vec![Vec::new(); n];
            for i in 0..n {
                for j in 0..i {
                    if edges[i][j] {
                        deps[perm[i]].push(perm[j]);
                    }
                }
            }
            deps
        })
}

proptest! {
    #[test]
    fn dag_orders_and_waves(deps in dag_deps()) {
        let dag = Dag::new(&deps).expect("edges only go to lower indices: no cycle");
        let n = deps.len();

        // The order holds every service once, dependencies first.
        let order = dag.order();
        let mut place = vec![usize::MAX; n];
        for (i, &id) in order.iter().enumerate() {
            prop_assert_eq!(place[id], usize::MAX, "service {} twice in the order", id);
            place[id] = i;
        }
        prop_assert!(place.iter().all(|&p| p != usize::MAX));
        for (id, ds) in deps.iter().enumerate() {
            for &d in ds {
                prop_assert!(place[d] < place[id]);
            }
        }

        // Each service stands one wave past its latest dependency, and the
        // waves together are the order.
        for (id, ds) in deps.iter().enumerate() {
            let want = ds.iter().map(|&d| dag.wave_of(d) + 1).max().unwrap_or(0);
            prop_assert_eq!(dag.wave_of(id), want);
            prop_assert!(dag.waves()[want].contains(&id));
        }
        let flat: Vec<usize> = dag.waves().iter().flatten().copied().collect();
        prop_assert_eq!(flat.as_slice(), order);
        prop_assert!(dag.waves().iter().all(|w| !w.is_empty()));

        // A wave is an antichain: nothing in it depends on anything else in
        // it, directly or through others.
        let reaches = |from: usize, to: usize| {
            let mut seen = vec![false; n];
            let mut todo = deps[from].clone();
            while let Some(id) = todo.pop() {
                if id == to {
                    return true;
                }
                if !std::mem::replace(&mut seen[id], true) {
                    todo.extend(&deps[id]);
                }
            }
            false
        };
        for wave in dag.waves() {
            for &a in wave {
                for &b in wave {
                    prop_assert!(!reaches(a, b), "{} and {} share a wave, but {} depends on {}", a, b, a, b);
                }
            }
        }

        // Stopping is starting backwards.
        let mut stop: Vec<usize> = dag.stop_order().collect();
        stop.reverse();
        prop_assert_eq!(stop.as_slice(), order);

        // The closure of a service holds exactly what it reaches through depends_on.
        let root = n / 2;
        let mut reach = vec![false; n];
        let mut todo = vec![root];
        while let Some(id) = todo.pop() {
            if !std::mem::replace(&mut reach[id], true) {
                todo.extend(&deps[id]);
            }
        }
        let closure = dag.closure(&[root]);
        prop_assert_eq!(closure.len(), reach.iter().filter(|&&r| r).count());
        prop_assert!(closure.iter().all(|&id| reach[id]));
        prop_assert!(closure.windows(2).all(|w| place[w[0]] < place[w[1]]));
    }

    /// With a back edge added, there is a cycle, and the reported path is
    /// made of real edges and comes back to where it started.
    #[test]
    fn dag_cycles_are_real_paths(deps in dag_deps(), pick in any::<prop::sample::Index>()) {
        let n = deps.len();
        let edges: Vec<(usize, usize)> = deps
            .iter()
            .enumerate()
            .flat_map(|(a, ds)| ds.iter().map(move |&b| (a, b)))
            .collect();
        prop_assume!(!edges.is_empty());
        let (a, b) = edges[pick.index(edges.len())];
        let mut cyclic = deps.clone();
        cyclic[b].push(a);
        let cycles = Dag::new(&cyclic).expect_err("a -> b and b -> a make a cycle");
        prop_assert!(!cycles.is_empty());
        for cycle in cycles {
            prop_assert!(cycle.len() >= 3, "at least x -> y -> x");
            prop_assert_eq!(cycle.first(), cycle.last());
            for w in cycle.windows(2) {
                prop_assert!(cyclic[w[0]].contains(&w[1]), "{} -> {} is an edge", w[0], w[1]);
            }
            let inner = &cycle[..cycle.len() - 1];
            let mut seen = vec![false; n];
            for &id in inner {
                prop_assert!(!std::mem::replace(&mut seen[id], true), "a cycle visits {} once", id);
            }
        }
    }
}

/// Any graph without self-loops (the validator refuses those first): acyclic or not.
fn any_graph() -> impl Strategy<Value = Vec<Vec<usize>>> {
    (1usize..24).prop_flat_map(|n| {
        prop::collection::vec(prop::collection::btree_set(0..n, 0..4), n).prop_map(|sets| {
            sets.into_iter()
                .enumerate()
                .map(|(id, deps)| deps.into_iter().filter(|&d| d != id).collect())
                .collect()
        })
    })
}

proptest! {
    /// On any graph: either an order with every service, dependencies
    /// first, or cycles that are real, simple and apart from each other.
    #[test]
    fn any_graph_is_ordered_or_its_cycles_are_real(deps in any_graph()) {
        let n = deps.len();
        match Dag::new(&deps) {
            Ok(dag) => {
                let mut place = vec![usize::MAX; n];
                for (i, &id) in dag.order().iter().enumerate() {
                    place[id] = i;
                }
                for (id, ds) in deps.iter().enumerate() {
                    prop_assert!(place[id] != usize::MAX);
                    for &d in ds {
                        prop_assert!(place[d] < place[id]);
                    }
                }
            }
            Err(cycles) => {
                prop_assert!(!cycles.is_empty());
                let mut in_a_cycle = vec![false; n];
                for cycle in &cycles {
                    prop_assert_eq!(cycle.first(), cycle.last());
                    for w in cycle.windows(2) {
                        prop_assert!(deps[w[0]].contains(&w[1]), "{} -> {} is an edge", w[0], w[1]);
                    }
                    for &id in &cycle[1..] {
                        prop_assert!(!std::mem::replace(&mut in_a_cycle[id], true), "{} in two cycles", id);
                    }
                }
            }
        }
    }
}

/// A stack of services whose commands have fixed or automatic ports, with
/// several processes each for the automatic ones. Fixed ports are told
/// apart by their index, so they never collide with each other.
#[derive(Debug, Clone)]
struct PortStack {
    low: u16,
    high: u16,
    /// Per service, per command: a fixed port, or `auto` with a number of processes.
    services: Vec<Vec<Result<u16, u32>>>,
}

impl PortStack {
    fn yaml(&self) -> String {
        let mut text = format!("port_range: {}-{}\nservices:\n", self.low, self.high);
        for (s, commands) in self.services.iter().enumerate() {
            text.push_str(&format!("  s{s}:\n    commands:\n"));
            for (c, port) in commands.iter().enumerate() {
                let port = match port {
                    Ok(fixed) => format!("port: {fixed}"),
                    Err(n) => format!("port: auto, number_of_processes: {n}"),
                };
                text.push_str(&format!("      c{c}: {{ command: x, {port} }}\n"));
            }
        }
        text
    }
}

fn port_stack() -> impl Strategy<Value = PortStack> {
    let command = prop_oneof![(0u16..64).prop_map(Ok), (1u32..4).prop_map(Err),];
    (
        8000u16..8032,
        0u16..48,
        prop::collection::vec(prop::collection::vec(command, 1..4), 1..8),
    )
        .prop_map(|(low, width, services)| {
            let mut next_fixed = 0;
            let services = services
                .into_iter()
                .map(|commands| {
                    commands
                        .into_iter()
                        .map(|c| {
                            c.map(|offset| {
                                // Distinct, in or near the range.
                                next_fixed += 1;
                                8000 + offset * 64 + next_fixed
                            })
                        })
                        .collect()
                })
                .collect();
            PortStack {
                low,
                high: low + width,
                services,
            }
        })
}

/// Every port of a valid stack, per member, in file order.
fn ports(stack: &orch::model::Stack) -> Vec<u16> {
    stack
        .members()
        .map(|(_, _, i)| i.port.expect("every command has a port"))
        .collect()
}

proptest! {
    /// Automatic ports never collide with each other or with fixed ones,
    /// stay in the range, and are the same on every load of the file; a
    /// service added at the end leaves the ports before it as they were.
    #[test]
    fn auto_ports_are_deterministic_and_never_collide(stack in port_stack()) {
        let text = stack.yaml();
        let needed: usize = stack.services.iter().flatten().filter_map(|c| c.err()).map(|n| n as usize).sum();
        let fixed_in_range = stack.services.iter().flatten().filter_map(|c| c.ok())
            .filter(|p| (stack.low..=stack.high).contains(p)).count();
        let free = usize::from(stack.high - stack.low) + 1 - fixed_in_range;
        match common::load(&text) {
            Ok(loaded) => {
                prop_assert!(needed <= free);
                let all = ports(&loaded);
                let mut seen = std::collections::HashSet::new();
                for port in &all {
                    prop_assert!(seen.insert(*port), "port {} twice in {:?}", port, all);
                }
                let autos = loaded.members().filter(|(sid, cid, _)| stack.services[*sid][*cid].is_err());
                for (_, _, instance) in autos {
                    let port = instance.port.expect("auto gives a port");
                    prop_assert!((stack.low..=stack.high).contains(&port));
                }
                prop_assert_eq!(&ports(&common::stack(&text)), &all);

                let mut longer = stack.clone();
                longer.services.push(vec![Err(1)]);
                if let Ok(longer) = common::load(&longer.yaml()) {
                    prop_assert_eq!(&ports(&longer)[..all.len()], &all[..]);
                }
            }
            Err(invalid) => {
                prop_assert!(needed > free, "only running out of ports is wrong here");
                let messages: Vec<&str> = invalid.problems().map(|p| p.message.as_str()).collect();
                prop_assert_eq!(messages.len(), 1);
                prop_assert!(messages[0].ends_with("has no free port left"), "{:?}", messages);
            }
        }
    }
}
