//! The environment each command receives, derived from the model.
//!
//! Precedence, lowest first: the stack `env`, the locators of the service's
//! direct dependencies, the service `env`, the command `env`, then `PORT`,
//! `ORCH_SERVICE` and `ORCH_INSTANCE`. orch's own environment is inherited
//! beneath all of them when a member is started, but is not part of these maps.

use indexmap::IndexMap;

use super::{Instance, ServiceId, Stack};

/// The locators that services `deps` provide, in the order of `deps`.
pub fn inputs<'a>(
    deps: &[ServiceId],
    provides: impl Fn(ServiceId) -> &'a IndexMap<String, String>,
) -> IndexMap<String, String> {
    deps.iter()
        .flat_map(|&d| provides(d).iter().map(|(k, v)| (k.clone(), v.clone())))
        .collect()
}

impl Stack {
    /// Locators handed to the commands of `sid`: what its direct dependencies provide.
    pub fn inputs(&self, sid: ServiceId) -> IndexMap<String, String> {
        inputs(&self.services[sid].depends_on, |d| {
            &self.services[d].provides
        })
    }

    /// The environment every command of `sid` receives: stack env, locators
    /// of its direct dependencies, service env.
    pub fn service_env(&self, sid: ServiceId) -> IndexMap<String, String> {
        let mut env = self.env.clone();
        env.extend(self.inputs(sid));
        env.extend(
            self.services[sid]
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        env
    }

    /// The complete environment orch sets for one member.
    pub fn member_env(&self, sid: ServiceId, instance: &Instance) -> IndexMap<String, String> {
        let mut env = self.service_env(sid);
        env.extend(instance.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        if let Some(port) = instance.port {
            env.insert("PORT".into(), port.to_string());
        }
        env.insert("ORCH_SERVICE".into(), self.services[sid].name.clone());
        env.insert("ORCH_INSTANCE".into(), instance.index.to_string());
        env
    }
}
