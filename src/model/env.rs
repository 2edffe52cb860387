//! The environment each command receives, derived from the model.
//!
//! Precedence, lowest first: the stack `env`, the locators of the service's
//! direct dependencies, the service `env`, the command `env`, then `PORT`,
//! `ORCH_SERVICE` and `ORCH_INSTANCE`. orch's own environment is inherited
//! beneath all of them when a member is started, but is not part of these maps.

use indexmap::IndexMap;

use super::{Instance, ServiceId, Stack, Text};

/// The locators that services `deps` provide, in the order of `deps`.
pub fn inputs<'a>(
    deps: &[ServiceId],
    provides: impl Fn(ServiceId) -> &'a IndexMap<String, Text>,
) -> IndexMap<String, Text> {
    deps.iter()
        .flat_map(|&d| provides(d).iter().map(|(k, v)| (k.clone(), v.clone())))
        .collect()
}

/// Values as `orch up` uses them: every host is 127.0.0.1.
pub fn loopback(env: &IndexMap<String, Text>) -> IndexMap<String, String> {
    env.iter().map(|(k, v)| (k.clone(), v.loopback())).collect()
}

impl Stack {
    /// Locators handed to the commands of `sid`: what its direct dependencies provide.
    pub fn inputs(&self, sid: ServiceId) -> IndexMap<String, Text> {
        inputs(&self.services[sid].depends_on, |d| {
            &self.services[d].provides
        })
    }

    /// The environment every command of `sid` receives: stack env, locators
    /// of its direct dependencies, service env; hosts left open.
    pub fn service_env_text(&self, sid: ServiceId) -> IndexMap<String, Text> {
        let mut env: IndexMap<String, Text> = self
            .env
            .iter()
            .map(|(k, v)| (k.clone(), Text::literal(v.as_str())))
            .collect();
        env.extend(self.inputs(sid));
        env.extend(
            self.services[sid]
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        env
    }

    /// The complete environment of one member, hosts left open.
    pub fn member_env_text(&self, sid: ServiceId, instance: &Instance) -> IndexMap<String, Text> {
        let mut env = self.service_env_text(sid);
        env.extend(instance.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        if let Some(port) = instance.port {
            env.insert("PORT".into(), Text::literal(port.to_string()));
        }
        env.insert(
            "ORCH_SERVICE".into(),
            Text::literal(self.services[sid].name.as_str()),
        );
        env.insert(
            "ORCH_INSTANCE".into(),
            Text::literal(instance.index.to_string()),
        );
        env
    }

    /// [`Stack::service_env_text`] as `orch up` uses it.
    pub fn service_env(&self, sid: ServiceId) -> IndexMap<String, String> {
        loopback(&self.service_env_text(sid))
    }

    /// The complete environment orch sets for one member.
    pub fn member_env(&self, sid: ServiceId, instance: &Instance) -> IndexMap<String, String> {
        loopback(&self.member_env_text(sid, instance))
    }
}
