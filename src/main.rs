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
    match orch::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            let code = error.exit_code();
            eprintln!("{:?}", miette::Report::new(error));
            code
        }
    }
}
