//! What can be checked before members start, by `orch up` and by a reload
//! alike: the programs of `system_packages` on PATH, the users and groups
//! commands run as, and ports another program already holds.

use std::collections::HashMap;
use std::path::Path;

use nix::unistd::Pid;

use super::core::Slot;
use super::spawn::{self, Identity};
use super::{procfs, Error};
use crate::model::{ServiceId, Stack};

/// The identity each command with `user`/`group` runs as, by (service,
/// command), or why it cannot.
pub type Identities = HashMap<(ServiceId, usize), Result<Identity, String>>;

/// The commands of `slots`, each once.
fn commands(slots: &[Slot]) -> Vec<(ServiceId, usize)> {
    let mut seen = Vec::new();
    for slot in slots {
        if !seen.contains(&(slot.sid, slot.cid)) {
            seen.push((slot.sid, slot.cid));
        }
    }
    seen
}

/// Every `system_packages` entry of the commands of `slots` must be on PATH.
pub fn packages(stack: &Stack, slots: &[Slot]) -> Result<(), Error> {
    let path = stack
        .env
        .get("PATH")
        .cloned()
        .or_else(|| std::env::var("PATH").ok())
        .unwrap_or_default();
    let mut missing: Vec<String> = Vec::new();
    for (sid, cid) in commands(slots) {
        let command = &stack.services[sid].commands[cid];
        for package in &command.system_packages {
            let found = if package.contains('/') {
                Path::new(package).is_file()
            } else {
                std::env::split_paths(&path).any(|dir| dir.join(package).is_file())
            };
            if !found {
                missing.push(format!(
                    "{package} (for {}.{})",
                    stack.services[sid].name, command.name
                ));
            }
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::Refused {
        message: format!("programs missing from PATH: {}", missing.join(", ")),
        help: Some("install them, or add their folder to PATH; nothing was started".into()),
    })
}

/// Resolve `user`/`group` of every command that has them; only root can switch.
pub fn resolve_identities(stack: &Stack) -> Identities {
    let root = nix::unistd::Uid::effective().is_root();
    let mut out = Identities::new();
    for (sid, service) in stack.services.iter().enumerate() {
        for (cid, command) in service.commands.iter().enumerate() {
            if command.user.is_none() && command.group.is_none() {
                continue;
            }
            let who = format!("{}.{}", service.name, command.name);
            let identity = if root {
                spawn::resolve_identity(command.user.as_deref(), command.group.as_deref())
                    .map_err(|e| format!("{who}: {e}"))
            } else {
                Err(format!(
                    "{who} runs as another user or group, which needs orch to run as root"
                ))
            };
            out.insert((sid, cid), identity);
        }
    }
    out
}

/// The identities of the commands of `slots` must all resolve.
pub fn identities(identities: &Identities, slots: &[Slot]) -> Result<(), Error> {
    let problems: Vec<&str> = commands(slots)
        .into_iter()
        .filter_map(|key| identities.get(&key)?.as_ref().err().map(String::as_str))
        .collect();
    if problems.is_empty() {
        return Ok(());
    }
    Err(Error::Refused {
        message: problems.join("\n"),
        help: Some(
            "run orch as root, or remove `user`/`group` from these commands; nothing was started"
                .into(),
        ),
    })
}

/// No port a member of `slots` will listen on may be held already, except
/// by a process `ours` accepts (a member that a reload restarts).
pub fn ports(stack: &Stack, slots: &[Slot], ours: &dyn Fn(Pid) -> bool) -> Result<(), Error> {
    let mut held = Vec::new();
    for slot in slots {
        let command = &stack.services[slot.sid].commands[slot.cid];
        let Some(port) = command.instances[slot.index].port else {
            continue;
        };
        if procfs::listening_inodes(port).is_empty() {
            continue;
        }
        let holder = procfs::port_holder(port);
        if holder.as_ref().is_some_and(|(pid, _)| ours(*pid)) {
            continue;
        }
        let holder =
            holder.map_or_else(String::new, |(pid, name)| format!(" by pid {pid} ({name})"));
        held.push(format!(
            "port {port}, wanted by {}.{}, is already held{holder}",
            stack.services[slot.sid].name, command.name
        ));
    }
    if held.is_empty() {
        return Ok(());
    }
    Err(Error::Failed {
        message: held.join("\n"),
        help: Some(
            "stop that program, or give the command another port; nothing was started".into(),
        ),
    })
}
