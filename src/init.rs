//! `orch init`: a commented starter stack file.

use std::io::Write as _;
use std::path::Path;

use crate::Error;

/// The starter: a service with a port and a readiness probe that provides a
/// locator, and a service that depends on it.
pub const STARTER: &str = include_str!("starter.yaml");

/// Write the starter to `path`, which must not exist yet.
pub fn write(path: &Path) -> Result<(), Error> {
    let failed = |message: String| Error::Failed(miette::miette!("{message}").into());
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => failed(format!(
                "{} already exists; orch init does not overwrite it",
                path.display()
            )),
            _ => failed(format!("cannot create {}: {e}", path.display())),
        })?;
    file.write_all(STARTER.as_bytes())
        .map_err(|e| failed(format!("cannot write {}: {e}", path.display())))?;
    let shown = path.display();
    println!("wrote {shown}: check it with `orch check -f {shown}`, run it with `orch up {shown}`");
    Ok(())
}
