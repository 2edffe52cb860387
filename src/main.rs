use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let color = std::env::var_os("NO_COLOR").is_none()
        && std::io::IsTerminal::is_terminal(&std::io::stderr());
    miette::set_hook(Box::new(move |_| {
        Box::new(
            miette::MietteHandlerOpts::new()
                .color(color)
                .unicode(color)
                .context_lines(1)
                .build(),
        )
    }))
    .expect("the report hook is installed once, first thing");
    let cli = orch::cli::Cli::parse();
    if !matches!(
        cli.command,
        orch::cli::Command::Up(_) | orch::cli::Command::Guard { .. }
    ) {
        // Reports end quietly when their reader goes away (`orch status | head`),
        // as other Unix tools do; `orch up` ignores SIGPIPE and keeps running.
        // SAFETY: restoring the default disposition installs no handler code.
        unsafe {
            let _ = nix::sys::signal::signal(
                nix::sys::signal::Signal::SIGPIPE,
                nix::sys::signal::SigHandler::SigDfl,
            );
        }
    }
    match orch::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            let code = error.exit_code();
            error.report();
            code
        }
    }
}
