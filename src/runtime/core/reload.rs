//! Reload: a new version of the stack becomes what is wanted. Services that
//! changed (and what depends on them) get a new configuration version, so
//! their processes are restarted by the pass; members are matched by label,
//! so unchanged ones keep their processes; members of removed commands are
//! retired and stopped. Nothing waits for anything here: a reload that comes
//! while another is in flight simply replaces what is wanted.

use std::collections::HashMap;
use std::sync::Arc;

use super::{Action, Core, Member, MemberId, Phase, Selection, ServiceState, Slot};
use crate::model::{ServiceId, Stack};

/// What a reload to a given stack would do, worked out before it is applied
/// (so `orch up`'s checks can run on what it starts).
#[derive(Debug, Clone)]
pub struct ReloadPlan {
    pub stack: Arc<Stack>,
    pub selection: Selection,
    /// Members of the new stack the reload starts: new, changed, or newly
    /// selected, and wanted.
    pub starts: Vec<Slot>,
    /// What changed, for the console: `None` when nothing did.
    pub summary: Option<String>,
}

/// How two versions of a stack differ, by service name.
struct Diff {
    added: Vec<String>,
    removed: Vec<String>,
    changed: Vec<String>,
    /// Services of the new stack to restart: the changed ones and what depends on them.
    restart: Vec<ServiceId>,
    log_dir: bool,
}

impl Diff {
    fn of(old: &Stack, new: &Stack) -> Diff {
        let mut diff = Diff {
            added: Vec::new(),
            removed: Vec::new(),
            changed: Vec::new(),
            restart: Vec::new(),
            log_dir: old.log_dir != new.log_dir,
        };
        let mut changed_ids = Vec::new();
        for (nid, service) in new.services.iter().enumerate() {
            match old.service_id(&service.name) {
                None => diff.added.push(service.name.clone()),
                Some(oid) if !same_service(old, oid, new, nid) => {
                    diff.changed.push(service.name.clone());
                    changed_ids.push(nid);
                }
                Some(_) => {}
            }
        }
        for service in &old.services {
            if new.service_id(&service.name).is_none() {
                diff.removed.push(service.name.clone());
            }
        }
        diff.restart = new.dag.dependents_closure(&changed_ids);
        diff
    }

    fn summary(&self, new: &Stack) -> Option<String> {
        let mut parts = Vec::new();
        if !self.added.is_empty() {
            parts.push(format!("added {}", self.added.join(", ")));
        }
        if !self.removed.is_empty() {
            parts.push(format!("removed {}", self.removed.join(", ")));
        }
        if !self.changed.is_empty() {
            parts.push(format!("changed {}", self.changed.join(", ")));
        }
        let dependents: Vec<&str> = self
            .restart
            .iter()
            .map(|&s| new.services[s].name.as_str())
            .filter(|name| !self.changed.iter().any(|c| c == name))
            .collect();
        if !dependents.is_empty() {
            parts.push(format!(
                "restarting what depends on them: {}",
                dependents.join(", ")
            ));
        }
        if self.log_dir {
            parts.push(format!("logs now go to {}", new.log_dir.display()));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

/// Whether a service runs exactly the same way in both stacks: the same
/// commands and expansions, dependencies (in any order), locators and
/// environment.
fn same_service(old: &Stack, o: ServiceId, new: &Stack, n: ServiceId) -> bool {
    let (a, b) = (&old.services[o], &new.services[n]);
    fn names<'a>(stack: &'a Stack, ids: &[ServiceId]) -> Vec<&'a str> {
        let mut names: Vec<&str> = ids
            .iter()
            .map(|&i| stack.services[i].name.as_str())
            .collect();
        names.sort_unstable();
        names
    }
    a.commands == b.commands
        && a.provides == b.provides
        && names(old, &a.depends_on) == names(new, &b.depends_on)
        && old.service_env(o) == new.service_env(n)
}

impl Core {
    /// What reloading to `new` would do; an error when the services `orch
    /// up` was asked to run are not all in it.
    pub fn plan_reload(&self, new: Arc<Stack>) -> Result<ReloadPlan, String> {
        let selected = self.selection.resolve(&new)?;
        let diff = Diff::of(&self.stack, &new);
        let old = |name: &str| self.stack.service_id(name).map(|o| &self.services[o]);
        let starts = Slot::all(&new)
            .filter(|slot| {
                let name = &new.services[slot.sid].name;
                let before = old(name);
                let held = before.is_some_and(|s| s.held);
                let fresh = before.is_none_or(|s| !s.selected) || diff.restart.contains(&slot.sid);
                selected[slot.sid] && !held && fresh
            })
            .collect();
        Ok(ReloadPlan {
            summary: diff.summary(&new),
            selection: self.selection.clone(),
            starts,
            stack: new,
        })
    }

    /// Make `stack` what is wanted (its plan was made with [`Core::plan_reload`]).
    pub(super) fn reload(
        &mut self,
        stack: Arc<Stack>,
        selection: Selection,
        out: &mut Vec<Action>,
    ) {
        let diff = Diff::of(&self.stack, &stack);
        match diff.summary(&stack) {
            Some(summary) => Self::announce(out, format!("reload: {summary}")),
            None => Self::announce(out, "reload: nothing changed"),
        }
        let selected = selection
            .resolve(&stack)
            .expect("the plan checked the selection against this stack");
        let mut services: Vec<ServiceState> = Vec::with_capacity(stack.services.len());
        for (nid, service) in stack.services.iter().enumerate() {
            let before = self.stack.service_id(&service.name).map(|o| {
                (
                    self.services[o].epoch,
                    self.services[o].held,
                    self.services[o].up_at,
                )
            });
            let epoch = match before {
                Some((epoch, ..)) if !diff.restart.contains(&nid) => epoch,
                _ => self.next_epoch(),
            };
            services.push(ServiceState {
                selected: selected[nid],
                held: before.is_some_and(|(_, held, _)| held),
                epoch,
                members: Vec::new(),
                up_at: before.and_then(|(.., up_at)| up_at),
                told_blocked: false,
            });
        }
        let mut by_label: HashMap<String, MemberId> = self
            .members
            .iter()
            .enumerate()
            .map(|(id, m)| (m.label.clone(), id))
            .collect();
        for slot in Slot::all(&stack) {
            let label = stack.member_label(slot.sid, slot.cid, slot.index);
            let id = match by_label.remove(&label) {
                Some(id) => {
                    let fresh = diff.restart.contains(&slot.sid)
                        || self
                            .stack
                            .service_id(&stack.services[slot.sid].name)
                            .is_none();
                    let member = &mut self.members[id];
                    member.slot = Some(slot);
                    if fresh && !member.phase.live() {
                        member.respawns.reset();
                        member.park(Phase::Pending);
                    }
                    id
                }
                None => {
                    self.members.push(Member::new(label, slot));
                    self.members.len() - 1
                }
            };
            services[slot.sid].members.push(id);
        }
        // Members of removed commands: retired, stopped by the pass.
        for id in by_label.into_values() {
            self.members[id].slot = None;
        }
        self.stack = stack;
        self.selection = selection;
        self.services = services;
    }
}
