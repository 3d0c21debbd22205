//! File writes that never leave a partly written file behind. Below every
//! module that writes (the compiler's `--emit-lp`, model directories, the CLI).

use crate::diagnostic::{Error, Result};

/// Writes a file atomically: a temporary file beside it, then a rename, so a
/// failure never leaves a partly written file.
pub fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
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
