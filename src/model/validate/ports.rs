//! Ports: fixed ones unique, automatic ones handed out in file order from
//! `port_range`.

use std::collections::{HashMap, HashSet};

use indexmap::IndexMap;
use miette::SourceSpan;

use super::{Draft, Validator, MAX_MEMBERS, MAX_PROCESSES};
use crate::config::de::Each;
use crate::config::raw::{PortRange, PortSpec, RawCommand};
use crate::config::Spanned;
use crate::diag::Problem;

impl Validator<'_> {
    /// Ports of every instance of every command: `[service][command] -> per
    /// instance`. A service's auto ports come from the `port_range` of its
    /// part (`ranges[draft.part]`); no port is handed out twice, even when
    /// ranges overlap.
    pub(super) fn ports(
        &mut self,
        drafts: &[Draft],
        ranges: &[PortRange],
    ) -> Vec<IndexMap<String, Vec<Option<u16>>>> {
        let mut fixed: HashMap<u16, (SourceSpan, String)> = HashMap::new();
        for draft in drafts {
            for (name, command) in commands(draft) {
                let Some(command) = &command.0 else { continue };
                let Some(Spanned {
                    value: PortSpec::Fixed(port),
                    span,
                    ..
                }) = &command.port
                else {
                    continue;
                };
                let who = format!("{}.{}", draft.name.value, name.value);
                if instances(command) > 1 {
                    self.problem(
                        Problem::new(
                            format!(
                                "{} processes of `{who}` cannot all listen on port {port}",
                                instances(command)
                            ),
                            *span,
                            "",
                        )
                        .help("use `port: auto` so each process gets its own port"),
                    );
                }
                if let Some((first, other)) = fixed.get(port) {
                    self.problem(
                        Problem::new(
                            format!("port {port} is used twice"),
                            *span,
                            format!("by `{who}`"),
                        )
                        .label(*first, format!("and by `{other}`"))
                        .help("give each command its own port, or use `port: auto`"),
                    );
                } else {
                    fixed.insert(*port, (*span, who));
                }
            }
        }
        let mut next: HashMap<PortRange, u32> = HashMap::new();
        let mut taken: HashSet<u16> = fixed.keys().copied().collect();
        let mut exhausted = HashSet::new();
        drafts
            .iter()
            .map(|draft| {
                let range = ranges[draft.part];
                let next = next.entry(range).or_insert(u32::from(range.low));
                commands(draft)
                    .into_iter()
                    .map(|(name, command)| {
                        let n = command.0.as_ref().map_or(1, instances);
                        let ports = match command.0.as_ref().and_then(|c| c.port.as_ref()) {
                            None => vec![None; n],
                            Some(Spanned { value: PortSpec::Fixed(p), .. }) => vec![Some(*p); n],
                            Some(Spanned { value: PortSpec::Auto, span, .. }) => (0..n)
                                .map(|_| {
                                    while *next <= u32::from(range.high) && taken.contains(&(*next as u16)) {
                                        *next += 1;
                                    }
                                    if *next > u32::from(range.high) {
                                        if exhausted.insert(range) {
                                            self.problem(
                                                Problem::new(format!("port_range {}-{} has no free port left", range.low, range.high), *span, "this command needs one")
                                                    .help("widen `port_range`, or give some commands fixed ports outside it"),
                                            );
                                        }
                                        return Some(0);
                                    }
                                    taken.insert(*next as u16);
                                    *next += 1;
                                    Some((*next - 1) as u16)
                                })
                                .collect(),
                        };
                        (name.value.clone(), ports)
                    })
                    .collect()
            })
            .collect()
    }
}

impl Validator<'_> {
    /// Whether the stack has at most [`MAX_MEMBERS`] members; a problem at
    /// the command that passes it otherwise.
    pub(super) fn members_within_limit(&mut self, drafts: &[Draft]) -> bool {
        let mut members = 0;
        for draft in drafts {
            for (name, command) in commands(draft) {
                let Some(command) = &command.0 else { continue };
                members += instances(command);
                if members > MAX_MEMBERS {
                    let span = command
                        .number_of_processes
                        .as_ref()
                        .map_or(name.span, |n| n.span);
                    self.problem(
                        Problem::new(
                            format!("the stack has more than {MAX_MEMBERS} members (processes)"),
                            span,
                            format!("reached with `{}.{}`", draft.name.value, name.value),
                        )
                        .help("a stack runs at most 100,000 processes; lower `number_of_processes`, or split the stack"),
                    );
                    return false;
                }
            }
        }
        true
    }
}

pub(super) fn instances(command: &RawCommand) -> usize {
    command
        .number_of_processes
        .as_ref()
        .map_or(1, |n| n.value.clamp(1, MAX_PROCESSES) as usize)
}

pub(super) fn commands(draft: &Draft) -> Vec<(&Spanned<String>, &Each<RawCommand>)> {
    draft.raw.iter().flat_map(|r| r.commands.iter()).collect()
}
