//! The stack file as written: serde structs that mirror the YAML, with spans
//! where later checks need to point. No meaning is given to values here
//! beyond their shape; `model` does that. The JSON Schema in `schemas/` is
//! generated from these types.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use indexmap::IndexMap;
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;

use super::de::{Each, Spanned};
use super::shapes::{EnvFiles, RawWhen};

/// A stack: service groups, what they provide, and how they depend on each other.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "orch stack file")]
#[schemars(extend("anyOf" = [{ "required": ["services"] }, { "required": ["include"] }]))]
pub struct RawStack {
    /// Format version; only 1 is accepted.
    pub version: Option<Spanned<u32>>,
    /// Name of the stack; defaults to the file's stem.
    pub name: Option<Spanned<String>>,
    /// Other stack files whose services, env and locators join this stack, relative to this file's folder.
    #[serde(default)]
    pub include: Vec<Spanned<String>>,
    /// Files of `KEY=value` lines (dotenv syntax) given to every command, beneath `env`.
    pub env_file: Option<EnvFiles>,
    /// Environment given to every command. Values may use `${VAR}` of orch's own environment.
    #[serde(default)]
    #[schemars(with = "IndexMap<String, EnvValue>")]
    pub env: IndexMap<Spanned<String>, Spanned<String>>,
    /// Where `port: auto` draws from, as `LOW-HIGH` (default 8300-8499).
    pub port_range: Option<Spanned<PortRange>>,
    /// Folder of the log files, relative to the stack file's folder (default `.orch/logs`).
    pub log_dir: Option<Spanned<String>>,
    /// The service groups, in the order they are shown everywhere.
    #[serde(default)]
    pub services: IndexMap<Spanned<String>, Each<RawService>>,
}

/// A service group: commands that together make one service.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    /// Services that must be up before this one starts; their locators are handed to its commands.
    #[serde(default)]
    pub depends_on: Vec<Spanned<String>>,
    /// The service runs only when one of these profiles is active (`orch up --profile NAME`), or when it is named.
    #[serde(default)]
    pub profiles: Vec<Spanned<String>>,
    /// Files of `KEY=value` lines (dotenv syntax) given to every command of this service, beneath its `env`.
    pub env_file: Option<EnvFiles>,
    /// Environment given to every command of this service.
    #[serde(default)]
    #[schemars(with = "IndexMap<String, EnvValue>")]
    pub env: IndexMap<Spanned<String>, Spanned<String>>,
    /// The members of the group. A service without commands but with `depends_on` is a bundle.
    #[serde(default)]
    pub commands: IndexMap<Spanned<String>, Each<RawCommand>>,
    /// Exported resource locators (e.g. `DATABASE_URL`), unique across the stack.
    #[serde(default)]
    pub provides: IndexMap<Spanned<String>, Spanned<String>>,
}

/// One command of a service group, run as `number_of_processes` members.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCommand {
    /// A string runs under `/bin/sh -c`; a list is the argv, run without a shell.
    pub command: Spanned<RawProgram>,
    /// A port number, or `auto` for the next free one of `port_range`.
    pub port: Option<Spanned<PortSpec>>,
    /// Working directory, relative to the stack file's folder.
    pub working_dir: Option<Spanned<String>>,
    /// Environment of this command.
    #[serde(default)]
    #[schemars(with = "IndexMap<String, EnvValue>")]
    pub env: IndexMap<Spanned<String>, Spanned<String>>,
    /// Restarts allowed within `respawn_window` before the member is disabled (default 5).
    pub respawn_count: Option<u32>,
    /// The window `respawn_count` counts restarts in (default 60s).
    pub respawn_window: Option<HumanDuration>,
    /// Delay before a restart; doubles while the member keeps failing (default 100ms).
    pub respawn_backoff: Option<HumanDuration>,
    /// How many processes of this command run (default 1).
    pub number_of_processes: Option<Spanned<u32>>,
    /// `always` (kept running), `once` (runs to completion), or a schedule: `{ every: 10m }`, `{ cron: "*/5 * * * *" }`.
    pub when_to_run: Option<Spanned<RawWhen>>,
    /// User to run as (name or number); needs orch to run as root.
    pub user: Option<Spanned<String>>,
    /// Group to run as (name or number); needs orch to run as root.
    pub group: Option<Spanned<String>>,
    /// When the member counts as ready.
    pub ready: Option<Spanned<RawProbe>>,
    /// A command run every `interval`; when it fails, the member is restarted.
    pub monitor: Option<Spanned<RawMonitor>>,
    /// Signal that stops the member (default SIGTERM).
    pub stop_signal: Option<SignalName>,
    /// Signal `orch restart` sends (default SIGHUP).
    pub restart_signal: Option<SignalName>,
    /// Time between `stop_signal` and SIGKILL (default 10s).
    pub stop_timeout: Option<HumanDuration>,
    /// Memory of the member's process group above which it is restarted, e.g. `512MiB`.
    pub memory_limit: Option<ByteSize>,
    /// Programs that must be on PATH before anything starts.
    #[serde(default)]
    pub system_packages: Vec<Spanned<String>>,
}

/// The schema of an environment value: orch reads `WORKERS: 4` and
/// `DEBUG: true` as the text they are written as, so editors should accept them.
pub struct EnvValue;

impl JsonSchema for EnvValue {
    fn schema_name() -> Cow<'static, str> {
        "EnvValue".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A value; numbers and booleans are taken as the text they are written as.",
            "type": ["string", "number", "boolean"]
        })
    }
}

/// `always` or `once`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WhenToRun {
    /// Keep it running; restart it when it exits.
    Always,
    /// Run it to completion; exit 0 is success and it is not restarted.
    Once,
}

/// A readiness probe: exactly one of `tcp`, `http`, `command`, `log`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawProbe {
    /// A port (`${port}`) or `host:port` that accepts TCP connections.
    pub tcp: Option<Spanned<String>>,
    /// A full URL that answers with a 2xx status.
    pub http: Option<Spanned<String>>,
    /// A command that exits 0.
    pub command: Option<Spanned<RawProgram>>,
    /// A regular expression matched against the member's output.
    pub log: Option<Spanned<String>>,
    /// Time between attempts (default 200ms).
    pub interval: Option<HumanDuration>,
    /// Time allowed for the probe to pass after start (default 60s).
    pub timeout: Option<HumanDuration>,
}

/// A monitoring command, run every `interval` once the member is ready.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawMonitor {
    /// The command; a failure (non-zero exit) restarts the member.
    pub command: Spanned<RawProgram>,
    /// Time between runs (default 10s).
    pub interval: Option<HumanDuration>,
    /// Time a run may take before it counts as failed (default 10s).
    pub timeout: Option<HumanDuration>,
}

/// A command line: a shell string or an argv list.
#[derive(Debug, Clone)]
pub enum RawProgram {
    Shell(String),
    Argv(Vec<Spanned<String>>),
}

impl<'de> Deserialize<'de> for RawProgram {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawProgram;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a command string or a list of arguments")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<RawProgram, E> {
                if s.trim().is_empty() {
                    return Err(E::custom("the command is empty"));
                }
                Ok(RawProgram::Shell(s.to_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawProgram, A::Error> {
                let mut argv = Vec::new();
                while let Some(arg) = seq.next_element::<Spanned<String>>()? {
                    argv.push(arg);
                }
                if argv.is_empty() {
                    return Err(de::Error::custom("the argument list is empty"));
                }
                Ok(RawProgram::Argv(argv))
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for RawProgram {
    fn schema_name() -> Cow<'static, str> {
        "Program".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A string runs under /bin/sh -c; a list is the argv, run without a shell.",
            "oneOf": [
                { "type": "string", "minLength": 1 },
                { "type": "array", "items": { "type": ["string", "number"] }, "minItems": 1 }
            ]
        })
    }
}

/// `auto` or a port number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortSpec {
    Auto,
    Fixed(u16),
}

impl<'de> Deserialize<'de> for PortSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = PortSpec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a port number (1-65535) or `auto`")
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<PortSpec, E> {
                port_number(n).map(PortSpec::Fixed).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<PortSpec, E> {
                self.visit_i64(i64::try_from(n).unwrap_or(i64::MAX))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<PortSpec, E> {
                match s {
                    "auto" => Ok(PortSpec::Auto),
                    _ => Err(E::custom(format_args!(
                        "`{s}` is not a port: use a number from 1 to 65535, or `auto`"
                    ))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

fn port_number(n: i64) -> Result<u16, String> {
    u16::try_from(n)
        .ok()
        .filter(|&p| p > 0)
        .ok_or_else(|| format!("port {n} is out of range: ports go from 1 to 65535"))
}

impl JsonSchema for PortSpec {
    fn schema_name() -> Cow<'static, str> {
        "Port".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "oneOf": [
                { "type": "integer", "minimum": 1, "maximum": 65535 },
                { "const": "auto" }
            ]
        })
    }
}

/// `LOW-HIGH`, both inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortRange {
    pub low: u16,
    pub high: u16,
}

impl PortRange {
    pub const DEFAULT: PortRange = PortRange {
        low: 8300,
        high: 8499,
    };
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let bad = || {
            de::Error::custom(format_args!(
                "`{text}` is not a port range: write it as LOW-HIGH, e.g. 8300-8499"
            ))
        };
        let (low, high) = text.split_once('-').ok_or_else(bad)?;
        let parse = |s: &str| -> Result<u16, D::Error> {
            let n: i64 = s.trim().parse().map_err(|_| bad())?;
            port_number(n).map_err(de::Error::custom)
        };
        let (low, high) = (parse(low)?, parse(high)?);
        if low > high {
            return Err(de::Error::custom(format_args!(
                "the range {low}-{high} is empty: LOW must not exceed HIGH"
            )));
        }
        Ok(PortRange { low, high })
    }
}

impl JsonSchema for PortRange {
    fn schema_name() -> Cow<'static, str> {
        "PortRange".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "pattern": "^[0-9]+-[0-9]+$" })
    }
}

/// A duration such as `500ms`, `10s`, `5m`, `1h` or `1m30s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// Parse `500ms`, `10s`, `5m`, `1h`, `1m30s`; every number needs a unit.
    pub fn parse(text: &str) -> Result<Duration, String> {
        let bad = || format!("`{text}` is not a duration: write e.g. 500ms, 10s, 5m or 1h");
        let mut rest = text.trim();
        if rest.is_empty() {
            return Err(bad());
        }
        let mut total = Duration::ZERO;
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !c.is_ascii_digit())
                .ok_or_else(|| format!("`{text}` needs a unit: write e.g. {text}s or {text}ms"))?;
            let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
            rest = &rest[digits..];
            let unit = rest
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(rest.len());
            let part = match &rest[..unit] {
                "ms" => Duration::from_millis(n),
                "s" => Duration::from_secs(n),
                "m" => Duration::from_secs(n.saturating_mul(60)),
                "h" => Duration::from_secs(n.saturating_mul(3600)),
                _ => return Err(bad()),
            };
            total = total.saturating_add(part);
            rest = &rest[unit..];
        }
        Ok(total)
    }
}

/// The short form of a duration, as the stack file would write it: `0s`,
/// `250ms`, `1.5s`, `60s`, `5m`, `2h`.
impl std::fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = self.0.as_millis();
        match ms {
            0 => f.write_str("0s"),
            1..=999 => write!(f, "{ms}ms"),
            _ if ms % 3_600_000 == 0 => write!(f, "{}h", ms / 3_600_000),
            _ if ms % 60_000 == 0 && ms >= 120_000 => write!(f, "{}m", ms / 60_000),
            _ if ms % 1000 == 0 => write!(f, "{}s", ms / 1000),
            _ => write!(f, "{:.1}s", self.0.as_secs_f64()),
        }
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        HumanDuration::parse(&text)
            .map(HumanDuration)
            .map_err(de::Error::custom)
    }
}

impl JsonSchema for HumanDuration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^([0-9]+(ms|s|m|h))+$",
            "examples": ["500ms", "10s", "5m"]
        })
    }
}

/// A size such as `512MiB`, `1G` or `1048576` (bytes). `K`, `M`, `G` and the
/// `KiB` forms are powers of 1024; `KB`, `MB`, `GB` powers of 1000.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub fn parse(text: &str) -> Result<u64, String> {
        let bad = || format!("`{text}` is not a size: write e.g. 512MiB, 1G or 1048576");
        let t = text.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let n: u64 = t[..split].parse().map_err(|_| bad())?;
        let unit: u64 = match t[split..].trim() {
            "" | "B" => 1,
            "K" | "k" | "KiB" => 1 << 10,
            "M" | "m" | "MiB" => 1 << 20,
            "G" | "g" | "GiB" => 1 << 30,
            "KB" | "kB" => 1_000,
            "MB" => 1_000_000,
            "GB" => 1_000_000_000,
            _ => return Err(bad()),
        };
        n.checked_mul(unit).ok_or_else(bad)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        ByteSize::parse(&text)
            .map(ByteSize)
            .map_err(de::Error::custom)
    }
}

impl JsonSchema for ByteSize {
    fn schema_name() -> Cow<'static, str> {
        "Size".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": ["string", "integer"],
            "pattern": "^[0-9]+ ?(B|K|k|KiB|M|m|MiB|G|g|GiB|KB|kB|MB|GB)?$",
            "examples": ["512MiB", "1G"]
        })
    }
}

/// A signal name such as `SIGTERM` (or `TERM`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignalName(pub nix::sys::signal::Signal);

impl<'de> Deserialize<'de> for SignalName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let upper = text.trim().to_ascii_uppercase();
        let full = if upper.starts_with("SIG") {
            upper
        } else {
            format!("SIG{upper}")
        };
        full.parse().map(SignalName).map_err(|_| {
            de::Error::custom(format_args!(
                "`{text}` is not a signal: use a name such as SIGTERM, SIGINT, SIGQUIT, SIGHUP or SIGUSR1"
            ))
        })
    }
}

impl JsonSchema for SignalName {
    fn schema_name() -> Cow<'static, str> {
        "Signal".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "pattern": "^(SIG)?[A-Z0-9]+$", "examples": ["SIGTERM", "SIGINT", "SIGHUP"] })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ok = [
            ("500ms", 500),
            ("10s", 10_000),
            ("5m", 300_000),
            ("1h", 3_600_000),
            ("1m30s", 90_000),
            ("0s", 0),
        ];
        for (text, ms) in ok {
            assert_eq!(
                HumanDuration::parse(text),
                Ok(Duration::from_millis(ms)),
                "{text}"
            );
        }
        assert!(HumanDuration::parse("10")
            .unwrap_err()
            .contains("needs a unit"));
        for bad in ["", "s", "10x", "1.5s", "-1s"] {
            assert!(HumanDuration::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes() {
        let ok = [
            ("512MiB", 512 << 20),
            ("1G", 1 << 30),
            ("1048576", 1 << 20),
            ("2KB", 2000),
            ("3 M", 3 << 20),
        ];
        for (text, n) in ok {
            assert_eq!(ByteSize::parse(text), Ok(n), "{text}");
        }
        for bad in ["", "MiB", "1T", "99999999999999999999G"] {
            assert!(ByteSize::parse(bad).is_err(), "{bad}");
        }
    }
}
