//! Command-line definitions (clap). No behaviour lives here.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  failure (a service failed, no running stack was found, ...)
  2  usage error or invalid stack file (nothing was started)";

/// A declarative dependency-graph process orchestrator.
///
/// orch reads a stack file of service groups, starts them in dependency
/// order, hands each service the locators (e.g. DATABASE_URL) its
/// dependencies provide, restarts members that die, and stops everything
/// in reverse order.
#[derive(Debug, Parser)]
#[command(name = "orch", version, after_help = EXIT_CODES, propagate_version = true)]
pub struct Cli {
    /// The stack file [default: ./stack.yaml, or $ORCH_FILE].
    #[arg(
        short = 'f',
        long = "file",
        value_name = "FILE",
        env = "ORCH_FILE",
        global = false
    )]
    pub file: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

/// `-f/--file` given after the subcommand.
#[derive(Debug, Clone, Args)]
pub struct FileArg {
    /// The stack file [default: ./stack.yaml, or $ORCH_FILE].
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the stack in the foreground: dependencies first, restart members
    /// that die, stop everything in reverse order on Ctrl-C or SIGTERM.
    #[command(after_help = EXIT_CODES)]
    Up(UpArgs),
    /// Validate the stack file and print a one-line summary.
    #[command(after_help = EXIT_CODES)]
    Check {
        #[command(flatten)]
        file: FileArg,
    },
    /// Show the dependency graph.
    #[command(after_help = EXIT_CODES)]
    Graph {
        #[command(flatten)]
        file: FileArg,
        /// How to draw it: a tree for the terminal, Graphviz dot, Mermaid, or JSON.
        #[arg(long, value_enum, default_value_t = GraphFormat::Tree)]
        format: GraphFormat,
    },
    /// Print the locators a service provides, fully expanded.
    #[command(after_help = EXIT_CODES)]
    Env {
        /// The service.
        service: String,
        #[command(flatten)]
        file: FileArg,
        /// Output format.
        #[arg(long, value_enum, default_value_t = EnvFormat::Env)]
        format: EnvFormat,
        /// Print the whole environment the service's commands receive (stack env,
        /// locators of its direct dependencies, service env).
        #[arg(long)]
        all: bool,
    },
    /// Show the services of the running stack and their members.
    #[command(visible_alias = "ps", after_help = EXIT_CODES)]
    Status {
        /// Only these services.
        services: Vec<String>,
        #[command(flatten)]
        file: FileArg,
        /// Print JSON: {"services": [{"name", "state", "members": [...]}]}.
        #[arg(long)]
        json: bool,
    },
    /// Explain why a service is not up.
    #[command(after_help = EXIT_CODES)]
    Why {
        service: String,
        #[command(flatten)]
        file: FileArg,
    },
    /// Print the last lines of the members' log files; -f follows them.
    #[command(after_help = EXIT_CODES)]
    Logs {
        /// Only these services.
        services: Vec<String>,
        /// The stack file (here -f means follow).
        #[arg(long = "file", value_name = "FILE")]
        file: Option<PathBuf>,
        /// Keep printing lines as they are written.
        #[arg(short = 'f', long)]
        follow: bool,
        /// Lines to show from the end of each log.
        #[arg(short = 'n', long, default_value_t = 10)]
        lines: usize,
    },
    /// Send each member of the services its restart signal (default SIGHUP).
    #[command(after_help = EXIT_CODES)]
    Restart {
        #[arg(required = true)]
        services: Vec<String>,
        #[command(flatten)]
        file: FileArg,
        /// Stop and start the members instead of signalling them.
        #[arg(long)]
        hard: bool,
    },
    /// Stop services of the running stack (what depends on them first).
    #[command(after_help = EXIT_CODES)]
    Stop {
        #[arg(required = true)]
        services: Vec<String>,
        #[command(flatten)]
        file: FileArg,
    },
    /// Start stopped services of the running stack (their dependencies first).
    #[command(after_help = EXIT_CODES)]
    Start {
        #[arg(required = true)]
        services: Vec<String>,
        #[command(flatten)]
        file: FileArg,
    },
    /// Stop the whole running stack, in reverse dependency order.
    #[command(after_help = EXIT_CODES)]
    Down {
        #[command(flatten)]
        file: FileArg,
    },
    /// Read the stack file again and apply the difference (as SIGHUP to `orch up`).
    #[command(after_help = EXIT_CODES)]
    Reload {
        #[command(flatten)]
        file: FileArg,
    },
    /// Print a stack file made from a Procfile or a docker compose file;
    /// what cannot carry over is said on stderr.
    #[command(after_help = EXIT_CODES)]
    Import {
        /// What FILE is.
        #[arg(value_enum)]
        kind: ImportKind,
        /// The Procfile or compose file to read.
        file: PathBuf,
    },
    /// Write a commented starter stack file (./stack.yaml, or -f FILE).
    #[command(after_help = EXIT_CODES)]
    Init {
        #[command(flatten)]
        file: FileArg,
    },
    /// Print the completion script of a shell.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print orch's man page (roff), e.g. `orch man > ~/.local/share/man/man1/orch.1`.
    Man,
    /// Compile the stack for an engine that runs many machines: systemd units,
    /// Kubernetes manifests or a Nomad job. What the engine cannot carry is a
    /// `warning:` line on stderr.
    #[command(after_help = EXIT_CODES)]
    Export {
        #[command(subcommand)]
        engine: ExportEngine,
    },
    /// Kill the members of an orch that died (started by `orch up` itself).
    #[command(hide = true)]
    Guard {
        /// The environment entry that marks the processes of that orch.
        mark: String,
    },
}

/// The engines `orch export` writes for.
#[derive(Debug, Subcommand)]
pub enum ExportEngine {
    /// Write systemd units to DIR: a target for the stack and for each
    /// service, a service unit (or template) per command.
    #[command(after_help = EXIT_CODES)]
    Systemd {
        /// The folder to write the units to; made when missing.
        #[arg(short = 'o', long = "output", value_name = "DIR")]
        output: PathBuf,
        #[command(flatten)]
        file: FileArg,
    },
    /// Print Kubernetes manifests (multi-document YAML): a Service per
    /// command with a port, a Deployment per long-running command, a Job per
    /// `once` command.
    #[command(after_help = EXIT_CODES)]
    Kubernetes {
        /// The container image: IMAGE for every service, SERVICE=IMAGE for one
        /// service; repeat it for each service that differs.
        #[arg(long, value_name = "[SERVICE=]IMAGE", required = true)]
        image: Vec<String>,
        /// The namespace of every object [default: none, kubectl's current one].
        #[arg(long, value_name = "NS")]
        namespace: Option<String>,
        #[command(flatten)]
        file: FileArg,
    },
    /// Print a Nomad job as the HTTP API takes it (JSON), for
    /// `nomad job run -json`.
    #[command(after_help = EXIT_CODES)]
    Nomad {
        #[command(flatten)]
        file: FileArg,
    },
}

/// Arguments of `orch up`.
#[derive(Debug, Clone, Args)]
pub struct UpArgs {
    /// The stack file (a path ending in .yaml or .yml, or an existing file),
    /// then the services to run with everything they depend on [default: all].
    #[arg(value_name = "FILE|SERVICE")]
    pub args: Vec<String>,
    #[command(flatten)]
    pub file: FileArg,
    /// Stop the whole stack as soon as a service fails.
    #[arg(long)]
    pub abort_on_failure: bool,
    /// Also run the services of this profile; repeat it for several
    /// (ORCH_PROFILES=a,b when not given).
    #[arg(
        long = "profile",
        value_name = "NAME",
        env = "ORCH_PROFILES",
        value_delimiter = ','
    )]
    pub profiles: Vec<String>,
    /// Run the stack in the background (its console in <log_dir>/orch.log) and
    /// return once every service is up: 0, or 1 naming the one that failed.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Started by `orch up -d`: leave the caller's session first.
    #[arg(long, hide = true)]
    pub detached: bool,
}

/// What `orch import` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ImportKind {
    /// `name: command` lines (foreman, honcho, overmind).
    Procfile,
    /// A docker compose file.
    Compose,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    Tree,
    Dot,
    Mermaid,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EnvFormat {
    /// NAME=value, one a line.
    Env,
    /// export NAME='value', for a shell to source.
    Export,
    /// A JSON object.
    Json,
}
