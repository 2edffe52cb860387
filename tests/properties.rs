//! Properties that hold for every input: the template parser and the DAG.

use orch::model::dag::Dag;
use orch::model::template::{self, Piece};
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
