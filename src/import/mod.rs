//! `orch import`: a stack file made from a Procfile or a docker compose
//! file, printed on stdout; what cannot carry over is a warning on stderr.

mod compose;
mod emit;
mod procfile;

use std::path::Path;

use crate::cli::ImportKind;
use crate::Error;

/// Read `file` as `kind` and print the stack file made from it.
pub fn run(kind: ImportKind, file: &Path) -> Result<(), Error> {
    let text = std::fs::read_to_string(file).map_err(|e| Error::Usage {
        message: format!("cannot read {}: {e}", file.display()),
        help: None,
    })?;
    let (mut stack, warnings) = match kind {
        ImportKind::Procfile => procfile::convert(&text),
        ImportKind::Compose => compose::convert(&text).map_err(|e| Error::Usage {
            message: format!("{}: {e}", file.display()),
            help: Some("give a docker compose file, with its services under `services:`".into()),
        })?,
    };
    let what = match kind {
        ImportKind::Procfile => "procfile",
        ImportKind::Compose => "compose",
    };
    stack.header = vec![
        format!("Made by `orch import {what} {}`.", file.display()),
        "Check it with `orch check`; relative paths are relative to this file's folder.".into(),
    ];
    for warning in warnings {
        eprintln!("warning: {warning}");
    }
    print!("{}", stack.render());
    Ok(())
}
