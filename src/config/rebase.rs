//! Moving every span of a file's raw structs by the file's base offset, so
//! the spans of a stack file and of the files it includes share one offset
//! space (see [`crate::diag::Sources`]) and each still says where it points.
//!
//! The raw structs are taken apart field by field, so a field added to one
//! of them does not compile until it is rebased here too.

use indexmap::map::MutableKeys;
use indexmap::IndexMap;

use super::de::{Each, Spanned};
use super::raw::{
    ByteSize, HumanDuration, PortRange, PortSpec, RawCommand, RawMonitor, RawProbe, RawProgram,
    RawService, RawStack, SignalName,
};
use super::shapes::{EnvFileRef, EnvFiles, RawSchedule, RawWhen};

/// Something holding spans of one file.
pub trait Rebase {
    /// Move every span (and verbatim text offset) by `by` bytes.
    fn rebase(&mut self, by: usize);
}

macro_rules! no_spans {
    ($($t:ty),*) => {
        $(impl Rebase for $t {
            fn rebase(&mut self, _: usize) {}
        })*
    };
}

no_spans!(
    String,
    bool,
    u32,
    PortRange,
    PortSpec,
    HumanDuration,
    ByteSize,
    SignalName
);

impl<T: Rebase> Rebase for Spanned<T> {
    fn rebase(&mut self, by: usize) {
        self.span = (self.span.offset() + by, self.span.len()).into();
        if let Some(at) = &mut self.text_at {
            *at += by;
        }
        self.value.rebase(by);
    }
}

impl<T: Rebase> Rebase for Option<T> {
    fn rebase(&mut self, by: usize) {
        if let Some(value) = self {
            value.rebase(by);
        }
    }
}

impl<T: Rebase> Rebase for Each<T> {
    fn rebase(&mut self, by: usize) {
        self.0.rebase(by);
    }
}

impl<T: Rebase> Rebase for Vec<T> {
    fn rebase(&mut self, by: usize) {
        for item in self {
            item.rebase(by);
        }
    }
}

impl<V: Rebase> Rebase for IndexMap<Spanned<String>, V> {
    fn rebase(&mut self, by: usize) {
        // A key's hash is its text alone, so moving its span keeps the map sound.
        for (key, value) in self.iter_mut2() {
            key.rebase(by);
            value.rebase(by);
        }
    }
}

impl Rebase for RawStack {
    fn rebase(&mut self, by: usize) {
        let RawStack {
            version,
            name,
            include,
            env_file,
            env,
            port_range,
            log_dir,
            services,
        } = self;
        version.rebase(by);
        name.rebase(by);
        include.rebase(by);
        env_file.rebase(by);
        env.rebase(by);
        port_range.rebase(by);
        log_dir.rebase(by);
        services.rebase(by);
    }
}

impl Rebase for RawService {
    fn rebase(&mut self, by: usize) {
        let RawService {
            depends_on,
            profiles,
            env_file,
            env,
            commands,
            provides,
        } = self;
        depends_on.rebase(by);
        profiles.rebase(by);
        env_file.rebase(by);
        env.rebase(by);
        commands.rebase(by);
        provides.rebase(by);
    }
}

impl Rebase for RawCommand {
    fn rebase(&mut self, by: usize) {
        let RawCommand {
            command,
            port,
            working_dir,
            env,
            respawn_count,
            respawn_window,
            respawn_backoff,
            number_of_processes,
            when_to_run,
            user,
            group,
            ready,
            monitor,
            stop_signal,
            restart_signal,
            stop_timeout,
            memory_limit,
            system_packages,
        } = self;
        command.rebase(by);
        port.rebase(by);
        working_dir.rebase(by);
        env.rebase(by);
        respawn_count.rebase(by);
        respawn_window.rebase(by);
        respawn_backoff.rebase(by);
        number_of_processes.rebase(by);
        when_to_run.rebase(by);
        user.rebase(by);
        group.rebase(by);
        ready.rebase(by);
        monitor.rebase(by);
        stop_signal.rebase(by);
        restart_signal.rebase(by);
        stop_timeout.rebase(by);
        memory_limit.rebase(by);
        system_packages.rebase(by);
    }
}

impl Rebase for RawProbe {
    fn rebase(&mut self, by: usize) {
        let RawProbe {
            tcp,
            http,
            command,
            log,
            interval,
            timeout,
        } = self;
        tcp.rebase(by);
        http.rebase(by);
        command.rebase(by);
        log.rebase(by);
        interval.rebase(by);
        timeout.rebase(by);
    }
}

impl Rebase for RawMonitor {
    fn rebase(&mut self, by: usize) {
        let RawMonitor {
            command,
            interval,
            timeout,
        } = self;
        command.rebase(by);
        interval.rebase(by);
        timeout.rebase(by);
    }
}

impl Rebase for RawProgram {
    fn rebase(&mut self, by: usize) {
        match self {
            RawProgram::Shell(_) => {}
            RawProgram::Argv(args) => args.rebase(by),
        }
    }
}

impl Rebase for EnvFiles {
    fn rebase(&mut self, by: usize) {
        for EnvFileRef { path, required: _ } in &mut self.0 {
            path.rebase(by);
        }
    }
}

impl Rebase for RawWhen {
    fn rebase(&mut self, by: usize) {
        match self {
            RawWhen::Plain(_) => {}
            RawWhen::Schedule(RawSchedule { every, cron }) => {
                every.rebase(by);
                cron.rebase(by);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_span_moves() {
        let text = "\
include: [other.yaml]
env_file: [.env, { path: .env.local, required: false }]
env: { A: a }
services:
  db:
    profiles: [infra]
    env_file: db.env
    commands:
      pg:
        command: [postgres, -p, '${port}']
        port: auto
        when_to_run: { cron: '*/5 * * * *' }
        ready: { tcp: '${port}' }
        monitor: { command: check }
        system_packages: [postgres]
";
        let (raw, problems) = crate::config::load(text);
        assert_eq!(problems, []);
        let mut raw = raw.expect("the stack reads");
        let before = format!("{raw:?}");
        raw.rebase(1000);
        let after = format!("{raw:?}");
        // Every offset in the debug text grew by 1000: none was left behind.
        let offsets = |s: &str| -> Vec<usize> {
            let re = regex::Regex::new(r"(?:offset: SourceOffset\(|text_at: Some\()(\d+)")
                .expect("a valid expression");
            re.captures_iter(s)
                .map(|c| c[1].parse().expect("a number"))
                .collect()
        };
        let (old, new) = (offsets(&before), offsets(&after));
        assert!(old.len() > 20, "{before}");
        assert_eq!(old.len(), new.len());
        for (o, n) in old.iter().zip(&new) {
            assert_eq!(o + 1000, *n);
        }
    }
}
