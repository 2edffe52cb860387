//! Which services `orch up` runs, from the services named on its command
//! line and the active profiles. Pure, so it can be applied again to a
//! stack read anew.

use super::{ServiceId, Stack};

/// Why the services asked for cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, miette::Diagnostic)]
#[error("{message}")]
pub struct SelectError {
    pub message: String,
    #[help]
    pub help: String,
}

/// `` the profile `a` `` or `` one of the profiles `a`, `b` ``.
fn one_of(names: &[String]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.as_slice() {
        [one] => format!("the profile {one}"),
        _ => format!("one of the profiles {}", quoted.join(", ")),
    }
}

impl Stack {
    /// The profiles the services name, in file order, each once.
    pub fn profiles(&self) -> Vec<&str> {
        let mut all: Vec<&str> = Vec::new();
        for profile in self.services.iter().flat_map(|s| &s.profiles) {
            if !all.contains(&profile.as_str()) {
                all.push(profile);
            }
        }
        all
    }

    /// The services to run, in file order, for the service `names` given
    /// and the active `profiles`:
    ///
    /// - a service without profiles is enabled; one with profiles only when
    ///   one of them is active, or when it is named;
    /// - with names, the services named and everything they depend on run;
    ///   without, every enabled service does;
    /// - a service that runs and depends on one that is not enabled is an
    ///   error naming the dependency and the profile to enable, as are an
    ///   unknown name or profile, and a selection with nothing in it.
    pub fn select(
        &self,
        names: &[String],
        profiles: &[String],
    ) -> Result<Vec<ServiceId>, SelectError> {
        let known = self.profiles();
        for profile in profiles {
            if !known.contains(&profile.as_str()) {
                let help = match crate::diag::suggest(profile, known.iter().copied()) {
                    Some(close) => format!("did you mean `{close}`?"),
                    None if known.is_empty() => {
                        "no service of this stack has `profiles`".to_owned()
                    }
                    None => format!("the profiles of `{}` are: {}", self.name, known.join(", ")),
                };
                return Err(SelectError {
                    message: format!(
                        "no service of stack `{}` has the profile `{profile}`",
                        self.name
                    ),
                    help,
                });
            }
        }
        let named = names
            .iter()
            .map(|n| {
                self.find_service(n).map_err(|e| SelectError {
                    message: e.message,
                    help: e.help,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let enabled = |sid: ServiceId| {
            let own = &self.services[sid].profiles;
            own.is_empty() || own.iter().any(|p| profiles.contains(p)) || named.contains(&sid)
        };
        let roots: Vec<ServiceId> = if named.is_empty() {
            (0..self.services.len()).filter(|&s| enabled(s)).collect()
        } else {
            named.clone()
        };
        if roots.is_empty() {
            return Err(SelectError {
                message: format!(
                    "every service of stack `{}` has profiles, and none is active",
                    self.name
                ),
                help: format!(
                    "enable one with `--profile NAME` (or ORCH_PROFILES), or name a service; the profiles are: {}",
                    known.join(", ")
                ),
            });
        }
        let mut selected = self.dag.closure(&roots);
        for &sid in &selected {
            if !enabled(sid) {
                continue;
            }
            let service = &self.services[sid];
            if let Some(&dep) = service.depends_on.iter().find(|&&d| !enabled(d)) {
                let dependency = &self.services[dep];
                let first = &dependency.profiles[0];
                return Err(SelectError {
                    message: format!(
                        "`{}` depends on `{}`, which runs only with {}",
                        service.name,
                        dependency.name,
                        one_of(&dependency.profiles)
                    ),
                    help: format!(
                        "enable it with `--profile {first}` (or ORCH_PROFILES={first}), or name `{}` on the command line",
                        dependency.name
                    ),
                });
            }
        }
        selected.sort_unstable();
        Ok(selected)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const STACK: &str = "
services:
  db:
    commands: { pg: { command: pg } }
  api:
    depends_on: [db]
    commands: { web: { command: web } }
  adminer:
    profiles: [debug]
    depends_on: [db]
    commands: { ui: { command: ui } }
  cache:
    profiles: [infra, full]
    commands: { redis: { command: redis } }
  worker:
    profiles: [full]
    depends_on: [cache]
    commands: { w: { command: w } }
  e2e:
    profiles: [test]
    depends_on: [api, cache]
    commands: { run: { command: run, when_to_run: once } }
";

    fn stack() -> Stack {
        Stack::from_text(Path::new("/s/shop.yaml"), STACK).expect("a valid stack")
    }

    fn select(names: &[&str], profiles: &[&str]) -> Result<Vec<String>, SelectError> {
        let stack = stack();
        let own = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        stack.select(&own(names), &own(profiles)).map(|ids| {
            ids.iter()
                .map(|&i| stack.services[i].name.clone())
                .collect()
        })
    }

    #[test]
    fn services_run_by_profiles_and_names() {
        let cases: &[(&[&str], &[&str], &[&str])] = &[
            // No profile: only what has none.
            (&[], &[], &["db", "api"]),
            (&[], &["debug"], &["db", "api", "adminer"]),
            // One profile of several is enough.
            (&[], &["infra"], &["db", "api", "cache"]),
            (&[], &["full"], &["db", "api", "cache", "worker"]),
            (
                &[],
                &["debug", "full"],
                &["db", "api", "adminer", "cache", "worker"],
            ),
            // Named: that and what it depends on, whatever its profiles.
            (&["api"], &[], &["db", "api"]),
            (&["adminer"], &[], &["db", "adminer"]),
            (&["cache"], &[], &["cache"]),
            // A named dependency need not be enabled by a profile.
            (&["worker", "cache"], &[], &["cache", "worker"]),
            (&["worker"], &["infra"], &["cache", "worker"]),
            (&["e2e"], &["infra"], &["db", "api", "cache", "e2e"]),
        ];
        for (names, profiles, want) in cases {
            assert_eq!(
                select(names, profiles).as_deref(),
                Ok(*want)
                    .map(|w: &[&str]| w.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
                    .as_deref(),
                "names {names:?}, profiles {profiles:?}"
            );
        }
    }

    #[test]
    fn a_dependency_that_does_not_run_names_its_profile() {
        let e = select(&["worker"], &[]).expect_err("cache is not enabled");
        assert_eq!(
            e.message,
            "`worker` depends on `cache`, which runs only with one of the profiles `infra`, `full`"
        );
        assert_eq!(
            e.help,
            "enable it with `--profile infra` (or ORCH_PROFILES=infra), or name `cache` on the command line"
        );
        let e = select(&[], &["test"]).expect_err("cache is not enabled");
        assert_eq!(
            e.message,
            "`e2e` depends on `cache`, which runs only with one of the profiles `infra`, `full`"
        );
    }

    #[test]
    fn unknown_profiles_and_names() {
        let e = select(&[], &["debgu"]).expect_err("no such profile");
        assert_eq!(
            e.message,
            "no service of stack `shop` has the profile `debgu`"
        );
        assert_eq!(e.help, "did you mean `debug`?");
        let e = select(&[], &["zzz"]).expect_err("no such profile");
        assert_eq!(
            e.help,
            "the profiles of `shop` are: debug, infra, full, test"
        );
        let e = select(&["ap"], &[]).expect_err("no such service");
        assert_eq!(e.message, "no service `ap` in stack `shop`");
    }

    #[test]
    fn nothing_to_run() {
        let stack = Stack::from_text(
            Path::new("/s/x.yaml"),
            "services:\n  a:\n    profiles: [p]\n    commands: { c: { command: c } }\n",
        )
        .expect("valid");
        let e = stack.select(&[], &[]).expect_err("nothing enabled");
        assert_eq!(
            e.message,
            "every service of stack `x` has profiles, and none is active"
        );
        assert_eq!(stack.select(&[], &["p".to_owned()]), Ok(vec![0]));
    }
}
