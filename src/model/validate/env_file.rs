//! `env_file`: dotenv files read into an environment layer, each file a
//! source problems can point into.

use std::path::Path;
use std::sync::Arc;

use indexmap::IndexMap;

use super::Validator;
use crate::config::dotenv;
use crate::config::shapes::EnvFiles;
use crate::diag::Problem;

impl Validator<'_> {
    /// Read the files of `env_file` (relative to `dir`) in order into `env`:
    /// a later entry replaces an earlier one of the same name. `${VAR}` in
    /// a file sees the entries read before it, then orch's environment.
    pub(super) fn env_files(
        &mut self,
        files: &EnvFiles,
        dir: &Path,
        env: &mut IndexMap<String, String>,
    ) {
        for file in &files.0 {
            let path = dir.join(&file.path.value);
            let text = match std::fs::read_to_string(&path) {
                Ok(text) => text,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && !file.required => continue,
                Err(e) => {
                    self.problem(
                        Problem::new(
                            format!(
                                "cannot read the env_file {}: {e}",
                                crate::model::display_name(&path)
                            ),
                            file.path.span,
                            "",
                        )
                        .help(format!(
                            "paths are relative to the folder of the stack file that names them; \
                             to skip it when it is missing, write `{{ path: {}, required: false }}`",
                            file.path.value
                        )),
                    );
                    continue;
                }
            };
            let base = self.sources.add(
                &crate::model::display_name(&path),
                Arc::from(text.as_str()),
                "bash",
            );
            let lookup = self.lookup;
            let seen = &*env;
            match dotenv::parse(&text, &|name| {
                seen.get(name).cloned().or_else(|| lookup(name))
            }) {
                Ok(entries) => env.extend(entries),
                Err(problems) => self
                    .problems
                    .extend(problems.into_iter().map(|p| p.rebased(base))),
            }
        }
    }
}
