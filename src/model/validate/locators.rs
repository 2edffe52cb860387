//! Locators: valid names, unique across the stack.

use std::collections::HashMap;

use miette::SourceSpan;

use indexmap::IndexMap;

use super::scope::Scope;
use super::{Draft, Validator};
use crate::diag::Problem;
use crate::model::{env, Dag, ServiceId, Text};

impl Validator<'_> {
    /// Expand every service's `provides`, dependencies first so theirs are
    /// known when a dependent uses them. `base` carries what every scope shares.
    pub(super) fn provides(
        &mut self,
        drafts: &[Draft],
        dag: Option<&Dag>,
        base: &Scope<'_>,
        ports: &[IndexMap<String, Vec<Option<u16>>>],
    ) -> Vec<IndexMap<String, Text>> {
        let order: Vec<ServiceId> = dag
            .as_ref()
            .map_or_else(|| (0..drafts.len()).collect(), |d| d.order().to_vec());
        let mut provides: Vec<IndexMap<String, Text>> = vec![IndexMap::new(); drafts.len()];
        for &sid in &order {
            let Some(raw) = &drafts[sid].raw else {
                continue;
            };
            let inputs = env::inputs(&drafts[sid].deps, |d| &provides[d]);
            let mut own = IndexMap::new();
            for (key, value) in &raw.provides {
                let scope = Scope {
                    service: &drafts[sid].name.value,
                    ports: &ports[sid],
                    locators: &[&own, &inputs],
                    ..*base
                };
                // One that cannot be expanded is reported once, here; where
                // it is used, its text stands in (the stack is invalid
                // anyway), so its users report no problem of their own.
                let expanded = self
                    .expand(value, &scope)
                    .unwrap_or_else(|| crate::model::Text::literal(value.value.clone()));
                own.insert(key.value.clone(), expanded);
            }
            provides[sid] = own;
        }

        provides
    }

    /// Check locator names and their uniqueness; who provides each.
    pub(super) fn locator_names<'d>(&mut self, drafts: &'d [Draft]) -> HashMap<String, &'d str> {
        let mut seen: HashMap<&str, (&str, SourceSpan)> = HashMap::new();
        let mut providers = HashMap::new();
        for draft in drafts {
            for key in draft.raw.iter().flat_map(|r| r.provides.keys()) {
                let valid = crate::model::shaped(
                    &key.value,
                    |c| c.is_ascii_uppercase() || c == '_',
                    |c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_',
                );
                if !valid {
                    self.problem(
                        Problem::new(format!("`{}` is not a valid locator name", key.value), key.span, "")
                            .help(format!(
                                "locators are environment variable names in capitals, matching ^[A-Z_][A-Z0-9_]*$, e.g. `{}`",
                                suggested_locator(&key.value)
                            )),
                    );
                }
                if let Some((first, span)) = seen.get(key.value.as_str()) {
                    let (here, there) = (self.file_of(key.span), self.file_of(*span));
                    let files = if here == there {
                        String::new()
                    } else {
                        format!(", in {there} and in {here}")
                    };
                    self.problem(
                        Problem::new(
                            format!("locator `{}` is provided twice{files}", key.value),
                            key.span,
                            format!("by `{}`", draft.name.value),
                        )
                        .label(*span, format!("and by `{first}`"))
                        .help(
                            "locators are unique across the stack; give one a more specific name",
                        ),
                    );
                    continue;
                }
                seen.insert(&key.value, (&draft.name.value, key.span));
                providers.insert(key.value.clone(), draft.name.value.as_str());
            }
        }
        providers
    }
}

fn suggested_locator(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}
