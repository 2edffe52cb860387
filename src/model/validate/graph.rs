//! Dependencies: names that resolve, no self or repeated entries, no cycles.

use std::collections::HashMap;

use miette::SourceSpan;

use super::{Draft, Validator};
use crate::diag::{suggest, Problem};
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
                        let help = match suggest(&dep.value, ids.keys().copied()) {
                            Some(close) => format!("did you mean `{close}`?"),
                            None => {
                                "`depends_on` lists services defined under `services:`".to_owned()
                            }
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

    pub(super) fn cycle(
        &mut self,
        cycle: &[ServiceId],
        drafts: &[Draft],
        dep_spans: &[HashMap<ServiceId, SourceSpan>],
    ) {
        let path = cycle
            .iter()
            .map(|&id| drafts[id].name.value.as_str())
            .collect::<Vec<_>>()
            .join(" -> ");
        let mut labels = cycle.windows(2).map(|w| {
            let (from, to) = (w[0], w[1]);
            (
                dep_spans[from][&to],
                format!(
                    "`{}` depends on `{}`",
                    drafts[from].name.value, drafts[to].name.value
                ),
            )
        });
        let (span, label) = labels.next().expect("a cycle has at least one edge");
        let mut p = Problem::new(format!("dependency cycle: {path}"), span, label);
        for (span, label) in labels {
            p = p.label(span, label);
        }
        self.problem(
            p.help("nothing in a cycle could ever start; remove one of these dependencies"),
        );
    }
}
