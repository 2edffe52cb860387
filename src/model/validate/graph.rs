//! Dependencies: names that resolve, no self or repeated entries, no cycles.

use std::collections::HashMap;

use miette::SourceSpan;

use super::{suggest, Draft, Validator};
use crate::diag::Problem;
use crate::model::ServiceId;

impl Validator<'_> {
    /// Resolve each draft's `depends_on` into ids; where each edge is written.
    pub(super) fn dependencies(
        &mut self,
        drafts: &mut [Draft],
    ) -> Vec<HashMap<ServiceId, SourceSpan>> {
        let ids: HashMap<&str, ServiceId> = drafts
            .iter()
            .enumerate()
            .map(|(i, d)| (d.name.value.as_str(), i))
            .collect();
        let mut dep_spans: Vec<HashMap<ServiceId, SourceSpan>> = vec![HashMap::new(); drafts.len()];
        let mut resolved: Vec<Vec<ServiceId>> = Vec::with_capacity(drafts.len());
        for (sid, draft) in drafts.iter().enumerate() {
            let mut deps = Vec::new();
            for dep in draft.raw.iter().flat_map(|r| &r.depends_on) {
                match ids.get(dep.value.as_str()) {
                    Some(&id) if id == sid => self.problem(
                        Problem::new(
                            format!("service `{}` depends on itself", dep.value),
                            dep.span,
                            "",
                        )
                        .help("remove it from its own `depends_on`"),
                    ),
                    Some(&id) if dep_spans[sid].contains_key(&id) => self.problem(
                        Problem::new(
                            format!("`{}` is listed twice in `depends_on`", dep.value),
                            dep.span,
                            "again here",
                        )
                        .label(dep_spans[sid][&id], "first here")
                        .help("list each dependency once"),
                    ),
                    Some(&id) => {
                        dep_spans[sid].insert(id, dep.span);
                        deps.push(id);
                    }
                    None => {
                        let help =
                            match suggest(self.suggestions, &dep.value, ids.keys().copied()) {
                                Some(close) => format!("did you mean `{close}`?"),
                                None => "`depends_on` lists services defined under `services:`"
                                    .to_owned(),
                            };
                        self.problem(
                            Problem::new(
                                format!("unknown service `{}`", dep.value),
                                dep.span,
                                "not a service of this stack",
                            )
                            .help(help),
                        );
                    }
                }
            }
            resolved.push(deps);
        }
        for (draft, deps) in drafts.iter_mut().zip(resolved) {
            draft.deps = deps;
        }
        dep_spans
    }

    /// A cycle as one problem: its path, and a label on each edge; of a long
    /// cycle, only the first and the last few edges ([`SHOWN_EDGES`] in all).
    pub(super) fn cycle(
        &mut self,
        cycle: &[ServiceId],
        drafts: &[Draft],
        dep_spans: &[HashMap<ServiceId, SourceSpan>],
    ) {
        let name = |id: ServiceId| drafts[id].name.value.as_str();
        let path = |ids: &[ServiceId]| {
            ids.iter()
                .map(|&id| name(id))
                .collect::<Vec<_>>()
                .join(" -> ")
        };
        let edges = cycle.len() - 1;
        let (message, shown) = if edges <= SHOWN_EDGES {
            (
                format!("dependency cycle: {}", path(cycle)),
                cycle.windows(2).collect::<Vec<_>>(),
            )
        } else {
            let half = SHOWN_EDGES / 2;
            let (head, tail) = (&cycle[..=half], &cycle[cycle.len() - 1 - half..]);
            (
                format!(
                    "dependency cycle of {edges} services: {} -> ... -> {}",
                    path(head),
                    path(tail)
                ),
                head.windows(2).chain(tail.windows(2)).collect(),
            )
        };
        let mut labels = shown.into_iter().map(|w| {
            let (from, to) = (w[0], w[1]);
            (
                dep_spans[from][&to],
                format!("`{}` depends on `{}`", name(from), name(to)),
            )
        });
        let (span, label) = labels.next().expect("a cycle has at least one edge");
        let mut p = Problem::new(message, span, label);
        for (span, label) in labels {
            p = p.label(span, label);
        }
        self.problem(
            p.help("nothing in a cycle could ever start; remove one of these dependencies"),
        );
    }
}

/// Edges of a cycle named and labelled: past a few, a list of them helps
/// nobody, and each label costs a pass over the file when it is rendered.
const SHOWN_EDGES: usize = 8;
