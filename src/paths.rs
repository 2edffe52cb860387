//! Where a running stack keeps its files: the control socket and the
//! run-state file, in a folder of the user's. The one place `orch up` and
//! the commands that talk to it agree on.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::unistd::Uid;

/// The folder for sockets and run-state files of this user's stacks:
/// `$XDG_RUNTIME_DIR/orch`, or `orch-UID` in the temporary folder.
pub fn run_dir() -> io::Result<PathBuf> {
    let dir = match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| Path::new(d).is_dir()) {
        Some(base) => PathBuf::from(base).join("orch"),
        None => std::env::temp_dir().join(format!("orch-{}", Uid::current())),
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)?;
    let meta = fs::metadata(&dir)?;
    if std::os::unix::fs::MetadataExt::uid(&meta) != Uid::current().as_raw() {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{} belongs to another user", dir.display()),
        ));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;
    }
    Ok(dir)
}

/// A short name for a stack that is unique to its file's absolute path:
/// `NAME-HASH`, short enough for a socket path.
pub fn stack_key(file: &Path) -> String {
    let stem: String = file
        .file_stem()
        .map(|s| {
            s.to_string_lossy()
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .take(24)
                .collect()
        })
        .unwrap_or_default();
    // FNV-1a: stable across builds and versions, unlike std's hasher.
    let hash = file
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    format!("{stem}-{hash:016x}")
}

/// The control socket of the stack whose file is `file` (absolute).
pub fn socket_path(file: &Path) -> io::Result<PathBuf> {
    Ok(run_dir()?.join(format!("{}.sock", stack_key(file))))
}

/// The run-state file of the stack whose file is `file` (absolute).
pub fn state_path(file: &Path) -> io::Result<PathBuf> {
    Ok(run_dir()?.join(format!("{}.state", stack_key(file))))
}
