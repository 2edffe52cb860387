//! The respawn rules: a member that fails is started again after a backoff
//! that doubles while it keeps failing, and is disabled when it has used up
//! `respawn_count` restarts within `respawn_window`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::{Action, Core, MemberId, Phase, Timer};
use crate::model::HumanDuration;

/// Longest delay between restarts, however long a member keeps failing.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// A member that stayed ready this long starts its backoff afresh when it fails.
pub const STABLE_AFTER: Duration = Duration::from_secs(10);

/// A member's recent restarts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Respawns {
    /// When recent restarts happened, within the respawn window.
    recent: VecDeque<Instant>,
    /// Consecutive failures, for the backoff.
    pub(super) streak: u32,
    /// Restarts since orch started.
    pub total: u32,
}

impl Respawns {
    /// A fresh count (the member was enabled again or reconfigured); the total stays.
    pub fn reset(&mut self) {
        self.recent.clear();
        self.streak = 0;
    }
}

impl Core {
    /// The member's process failed (or could not start): start it again
    /// after its backoff, or disable it when it has used up its restarts.
    /// A member that is not wanted any more just stays stopped.
    pub(super) fn fail(
        &mut self,
        member: MemberId,
        reason: String,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        self.members[member].last_failure = Some(reason.clone());
        let Some(slot) = self.members[member].slot else {
            return;
        };
        if !self.wanted(slot.sid) {
            return;
        }
        let respawn = self.stack.services[slot.sid].commands[slot.cid].respawn;
        let window = HumanDuration(respawn.window);
        let m = &mut self.members[member];
        while m
            .respawns
            .recent
            .front()
            .is_some_and(|&t| now.duration_since(t) > respawn.window)
        {
            m.respawns.recent.pop_front();
        }
        if m.respawns.recent.len() >= respawn.count as usize {
            let used = m.respawns.recent.len();
            m.park(Phase::Failed {
                reason: reason.clone(),
            });
            self.say(
                out,
                member,
                format!("{reason}; disabled after {used} restarts within {window}"),
            );
            if self.abort_on_failure {
                let label = &self.members[member].label;
                Self::announce(
                    out,
                    format!("{label} failed: stopping the stack (--abort-on-failure)"),
                );
                self.shut_down(false, out);
            }
            return;
        }
        let seed = m.generation.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ member as u64;
        let delay = backoff_delay(respawn.backoff, m.respawns.streak, seed);
        m.respawns.streak += 1;
        m.respawns.total += 1;
        m.respawns.recent.push_back(now);
        let text = format!(
            "{reason}; restarting in {} (restart {} of {} within {window})",
            HumanDuration(delay),
            m.respawns.recent.len(),
            respawn.count,
        );
        if delay.is_zero() {
            m.park(Phase::Pending);
        } else {
            m.park(Phase::Backoff { until: now + delay });
            out.push(Action::SetTimer {
                at: now + delay,
                member,
                generation: m.generation,
                timer: Timer::Restart,
            });
        }
        self.say(out, member, text);
    }
}

/// `base` doubled for each failure in the streak, capped at [`MAX_BACKOFF`]
/// (or at `base` when that is larger), with up to ±10% jitter from `seed`.
pub fn backoff_delay(base: Duration, streak: u32, seed: u64) -> Duration {
    if base.is_zero() {
        return Duration::ZERO;
    }
    let doubled = base.saturating_mul(1 << streak.min(16));
    let capped = doubled.min(MAX_BACKOFF.max(base));
    // seed % 201 is 0..=200: a factor from 0.90 to 1.10.
    let factor = 0.9 + (seed % 201) as f64 / 1000.0;
    capped.mul_f64(factor)
}
