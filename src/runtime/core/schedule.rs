//! Scheduled commands: between runs a member waits, armed; at each tick it
//! runs if its previous run is over, and the tick is skipped (and counted)
//! if not. Respawn does not apply: a run that fails is reported, and the
//! next one comes at its time. The ticks themselves come from the
//! supervisor, which reads the wall clock; the core never does.

use std::time::Instant;

use super::{Action, Core, MemberId, Phase};

impl Core {
    pub(super) fn tick(&mut self, member: MemberId, now: Instant, out: &mut Vec<Action>) {
        match self.members[member].phase {
            Phase::Waiting => self.run_now(member, now, out),
            _ if self.members[member].phase.live() && self.scheduled(member) => {
                let m = &mut self.members[member];
                m.skipped += 1;
                let skipped = m.skipped;
                self.say(
                    out,
                    member,
                    format!(
                        "still running at its next time: that run is skipped ({skipped} so far)"
                    ),
                );
            }
            _ => {}
        }
    }

    /// Start a waiting scheduled member's run, when what it depends on is up.
    pub(super) fn run_now(&mut self, member: MemberId, now: Instant, out: &mut Vec<Action>) {
        let Some(slot) = self.members[member].slot else {
            return;
        };
        if !self.wanted(slot.sid) {
            return;
        }
        let health = self.health();
        let stack = std::sync::Arc::clone(&self.stack);
        let down = stack.services[slot.sid]
            .depends_on
            .iter()
            .find(|&&d| !health.up[d]);
        match down {
            Some(&dep) => {
                self.members[member].skipped += 1;
                let dep = &stack.services[dep].name;
                self.say(out, member, format!("not run at its time: {dep} is not up"));
            }
            None => self.launch(member, now, out),
        }
    }
}
