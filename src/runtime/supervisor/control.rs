//! Control requests and reloads, as the supervisor serves them.
//!
//! A reload reads and validates the stack file on a blocking thread (a big
//! file takes a while), then comes back here to be planned, checked like
//! `orch up` checks (ports, programs, users) and applied. Reloads are
//! numbered: one whose file was read before a later one's is not applied
//! after it, so the last reload asked is the one that wins.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::Supervisor;
use crate::control::protocol::{Request, Response, StatusReport};
use crate::model::{ServiceId, Stack};
use crate::runtime::core::{Event, WhyLine};
use crate::runtime::preflight::{self, Identities};
use crate::runtime::{logs, procfs};

/// A stack file read for a reload, and whom to answer.
pub(super) struct Loaded {
    seq: u64,
    result: Result<(Stack, Identities), String>,
    reply: Option<oneshot::Sender<Response>>,
}

/// Reloads under way.
pub(super) struct Reloads {
    tx: mpsc::UnboundedSender<Loaded>,
    rx: mpsc::UnboundedReceiver<Loaded>,
    next: u64,
    /// The number of the last reload applied.
    applied: u64,
}

impl Default for Reloads {
    fn default() -> Reloads {
        let (tx, rx) = mpsc::unbounded_channel();
        Reloads {
            tx,
            rx,
            next: 0,
            applied: 0,
        }
    }
}

impl Reloads {
    pub(super) async fn next(&mut self) -> Option<Loaded> {
        self.rx.recv().await
    }
}

fn done(line: impl Into<String>) -> Response {
    Response::Done {
        lines: vec![line.into()],
    }
}

impl Supervisor {
    /// Serve one request; the answer goes back on `reply`.
    pub(super) fn request(&mut self, request: Request, reply: oneshot::Sender<Response>) {
        let ids = |names: &[String]| -> Result<Vec<ServiceId>, Response> {
            names
                .iter()
                .map(|n| {
                    self.core
                        .stack
                        .find_service(n)
                        .map_err(|e| Response::Error {
                            message: e.message,
                            help: Some(e.help),
                            diagnostic: None,
                        })
                })
                .collect()
        };
        let stopping = || Response::error("the stack is being stopped");
        let response = match request {
            Request::Status { services } => match ids(&services) {
                Ok(ids) => Response::Status(self.status(&ids)),
                Err(e) => e,
            },
            Request::Why { service } => match ids(std::slice::from_ref(&service)) {
                Ok(ids) => return self.why(ids[0], reply),
                Err(e) => e,
            },
            Request::Reload if self.core.shutdown => stopping(),
            Request::Reload => return self.start_reload(Some(reply)),
            Request::Down => {
                self.handle(Event::Shutdown { force: false });
                done("stopping the stack")
            }
            Request::Stop { .. } | Request::Start { .. } | Request::Restart { .. }
                if self.core.shutdown =>
            {
                stopping()
            }
            Request::Stop { services } => {
                self.order(&services, "stopping", |services| Event::Stop { services })
            }
            Request::Start { services } => {
                self.order(&services, "starting", |services| Event::Start { services })
            }
            Request::Restart { services, hard } => {
                self.order(&services, "restarting", |services| Event::Restart {
                    services,
                    hard,
                })
            }
        };
        let _ = reply.send(response);
    }

    fn order(
        &mut self,
        names: &[String],
        verb: &str,
        event: impl FnOnce(Vec<ServiceId>) -> Event,
    ) -> Response {
        let ids: Result<Vec<ServiceId>, _> = names
            .iter()
            .map(|n| self.core.stack.find_service(n))
            .collect();
        match ids {
            Ok(ids) => {
                self.handle(event(ids));
                done(format!("{verb} {}", names.join(", ")))
            }
            Err(e) => Response::Error {
                message: e.message,
                help: Some(e.help),
                diagnostic: None,
            },
        }
    }

    /// What a request that comes once orch has decided to exit gets.
    pub(super) fn answer_after_exit(&self, request: &Request) -> Response {
        match request {
            Request::Status { services } if services.is_empty() => {
                Response::Status(self.status(&[]))
            }
            Request::Down => done("the stack has stopped"),
            _ => Response::error("the stack has stopped"),
        }
    }

    pub(super) fn status(&self, ids: &[ServiceId]) -> StatusReport {
        let mut report = self.core.status(ids, std::time::Instant::now());
        let groups: Vec<(usize, usize, nix::unistd::Pid)> = report
            .services
            .iter()
            .enumerate()
            .flat_map(|(s, service)| {
                service
                    .members
                    .iter()
                    .enumerate()
                    .filter_map(move |(m, member)| {
                        Some((s, m, nix::unistd::Pid::from_raw(member.pid?)))
                    })
            })
            .collect();
        let pids: Vec<_> = groups.iter().map(|g| g.2).collect();
        for ((s, m, _), bytes) in groups.into_iter().zip(procfs::group_rss_bytes(&pids)) {
            report.services[s].members[m].memory = Some(bytes);
        }
        let ids: Vec<ServiceId> = if ids.is_empty() {
            (0..self.core.services.len()).collect()
        } else {
            ids.to_vec()
        };
        for (service, sid) in report.services.iter_mut().zip(ids) {
            for (member, &id) in service
                .members
                .iter_mut()
                .zip(&self.core.services[sid].members)
            {
                if let Some((_, next)) = self.armed.get(&id) {
                    member.next_run =
                        Some(next.to_rfc3339_opts(chrono::SecondsFormat::Secs, false));
                }
            }
        }
        report
    }

    /// `orch why`: the core's account, with the end of each log it names,
    /// read off this thread.
    fn why(&self, sid: ServiceId, reply: oneshot::Sender<Response>) {
        let lines: Vec<(WhyLine, std::path::PathBuf)> = self
            .core
            .why(sid)
            .into_iter()
            .map(|line| {
                let path = match &line {
                    WhyLine::LogTail(m) => self.core.stack.log_path(&self.core.members[*m].label),
                    WhyLine::Text(_) => std::path::PathBuf::new(),
                };
                (line, path)
            })
            .collect();
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            for (line, path) in lines {
                match line {
                    WhyLine::Text(text) => out.push(text),
                    WhyLine::LogTail(_) => {
                        let tail = logs::view::tail(&path, 5);
                        if !tail.is_empty() {
                            out.push(format!("  last lines of {}:", path.display()));
                            out.extend(tail.into_iter().map(|l| format!("    {l}")));
                        }
                    }
                }
            }
            let _ = reply.send(Response::Why { lines: out });
        });
    }

    /// Read and validate the stack file again, off this thread; the rest
    /// happens in [`Supervisor::finish_reload`].
    pub(super) fn start_reload(&mut self, reply: Option<oneshot::Sender<Response>>) {
        self.reloads.next += 1;
        let seq = self.reloads.next;
        let file = self.core.stack.file.clone();
        let tx = self.reloads.tx.clone();
        tokio::task::spawn_blocking(move || {
            let result = Stack::load(&file)
                .map_err(|e| format!("{:?}", miette::Report::new(e)))
                .and_then(|stack| {
                    let identities = preflight::resolve_identities(&stack);
                    std::fs::create_dir_all(&stack.log_dir).map_err(|e| {
                        format!(
                            "cannot make the log folder {}: {e}",
                            stack.log_dir.display()
                        )
                    })?;
                    Ok((stack, identities))
                });
            let _ = tx.send(Loaded { seq, result, reply });
        });
    }

    /// Apply a stack file read for a reload, if nothing newer was applied
    /// and it passes the checks `orch up` makes; otherwise change nothing.
    pub(super) fn finish_reload(&mut self, loaded: Loaded) {
        let Loaded { seq, result, reply } = loaded;
        let answer = |response: Response| {
            if let Some(reply) = reply {
                let _ = reply.send(response);
            }
        };
        if seq < self.reloads.applied {
            return answer(done("a later reload was applied instead of this one"));
        }
        if self.core.shutdown {
            return answer(Response::error("the stack is being stopped"));
        }
        let refuse = |this: &Self, report: String| {
            this.console
                .say("reload: the stack file is not valid; everything keeps running unchanged");
            this.console.error(&format!("{report}\n"));
            Response::Error {
                message: "the stack file is not valid; the running stack was left as it is".into(),
                help: None,
                diagnostic: Some(report),
            }
        };
        let (stack, identities) = match result {
            Ok(loaded) => loaded,
            Err(report) => return answer(refuse(self, report)),
        };
        let plan = match self.core.plan_reload(Arc::new(stack)) {
            Ok(plan) => plan,
            Err(why) => return answer(self.refuse_reload(why)),
        };
        let ours: HashMap<nix::unistd::Pid, ()> = self
            .core
            .members
            .iter()
            .filter_map(|m| Some((m.phase.pid()?, ())))
            .collect();
        let checked = preflight::packages(&plan.stack, &plan.starts)
            .and_then(|()| preflight::identities(&identities, &plan.starts))
            .and_then(|()| {
                preflight::ports(&plan.stack, &plan.starts, &|holder| {
                    procfs::process_group(holder).is_some_and(|g| ours.contains_key(&g))
                })
            });
        if let Err(e) = checked {
            return answer(self.refuse_reload(e.to_string()));
        }
        let relocate = plan.stack.log_dir != self.core.stack.log_dir;
        self.identities = identities;
        self.reloads.applied = seq;
        self.handle(Event::Reload {
            stack: plan.stack,
            selection: plan.selection,
        });
        if relocate {
            for (id, member) in self.core.members.iter().enumerate() {
                self.logs
                    .relocate(id, self.core.stack.log_path(&member.label));
            }
        }
        answer(done("reloading; orch's console says what changed"));
    }

    fn refuse_reload(&self, why: String) -> Response {
        self.console.say(&format!(
            "reload refused: {why}; everything keeps running unchanged"
        ));
        Response::error(format!("reload refused: {why}"))
    }
}
