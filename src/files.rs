//! File writes that never leave a partly written file behind. Below every
//! module that writes (the compiler's `--emit-lp`, model directories, the CLI).

use crate::diagnostic::{Error, Result};

/// Writes a file atomically: a temporary file beside it, then a rename, so a
/// failure never leaves a partly written file.
///
/// The rename replaces a directory entry, so it is refused where that would
/// not be what the user meant: a symbolic link (its target would stay
/// unchanged), a FIFO, socket or device (it would become a regular file), or
/// a file with other hard links (they would keep the old contents).
pub fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        let kind = meta.file_type();
        let what = if kind.is_symlink() {
            Some("a symbolic link")
        } else if kind.is_dir() {
            Some("a directory")
        } else if !kind.is_file() {
            Some("not a regular file (a FIFO, socket or device)")
        } else if hard_links(&meta) > 1 {
            Some("a file with other hard links")
        } else {
            None
        };
        if let Some(what) = what {
            return Err(Error::usage(format!(
                "refusing to replace {}: it is {what}; write to a new regular file (or to standard output)",
                path.display()
            )));
        }
    }
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    let name = path.file_name().ok_or_else(|| Error::usage(format!("{} is not a file path", path.display())))?;
    let tmp = dir.join(format!(".{}.tmp-{}", name.to_string_lossy(), std::process::id()));
    let result = std::fs::write(&tmp, bytes).and_then(|_| std::fs::rename(&tmp, path));
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::usage(format!("cannot write {}: {e}", path.display())));
    }
    Ok(())
}

#[cfg(unix)]
fn hard_links(meta: &std::fs::Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::nlink(meta)
}

#[cfg(not(unix))]
fn hard_links(_: &std::fs::Metadata) -> u64 {
    1
}
