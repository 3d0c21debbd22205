//! File writes that never leave a partly written file behind. Below every
//! module that writes (the compiler's `--emit-lp`, model directories, the CLI).

use crate::diagnostic::{Error, Result};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// The largest text file read (a program, a corpus, a table): reading stops
/// there, so `import "/dev/zero"` or a runaway file is refused, not read
/// until memory runs out.
pub const MAX_TEXT_BYTES: u64 = 256 << 20;

/// A UTF-8 text file of at most [`MAX_TEXT_BYTES`].
pub fn read_text(path: &std::path::Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)?.take(MAX_TEXT_BYTES + 1).read_to_string(&mut text)?;
    if text.len() as u64 > MAX_TEXT_BYTES {
        return Err(std::io::Error::other(format!("it is larger than the limit of {} MiB", MAX_TEXT_BYTES >> 20)));
    }
    Ok(text)
}

/// Held (shared) by every atomic write while its temporary file or directory
/// exists; taken whole by an interrupt handler (`cli::interrupt`) before it
/// exits, so that Ctrl-C waits for a write in progress to finish (or to be
/// rolled back) instead of leaving its temporary behind.
static WRITES: RwLock<()> = RwLock::new(());

/// Marks an atomic write in progress until the guard is dropped.
pub fn writing() -> RwLockReadGuard<'static, ()> {
    WRITES.read().unwrap_or_else(|e| e.into_inner())
}

/// Waits for every write in progress and blocks new ones (for as long as
/// the guard lives: an interrupt handler exits holding it).
pub fn no_more_writes() -> RwLockWriteGuard<'static, ()> {
    WRITES.write().unwrap_or_else(|e| e.into_inner())
}

/// Writes a directory of files (relative path, bytes) atomically: a hidden
/// `.NAME.tmp-PID` sibling filled and renamed into place (an existing `dir`
/// is moved aside first and put back on failure), so a failure or Ctrl-C
/// leaves the previous directory or the new one, never a partial one. The
/// caller decides whether an existing `dir` may be replaced.
pub fn write_dir_atomic(dir: &std::path::Path, files: &[(String, Vec<u8>)]) -> Result<()> {
    let files: Vec<(String, Contents)> = files.iter().map(|(n, b)| (n.clone(), Contents::Bytes(b))).collect();
    write_dir_atomic_with(dir, &files)
}

/// What one file of an atomic directory write holds.
pub enum Contents<'a> {
    /// These bytes.
    Bytes(&'a [u8]),
    /// Whatever this function writes to the (temporary) path it is given:
    /// for files written in pieces, which would not fit in memory twice.
    Writer(Box<dyn Fn(&std::path::Path) -> Result<()> + 'a>),
}

/// [`write_dir_atomic`] with files given as [`Contents`].
pub fn write_dir_atomic_with(dir: &std::path::Path, files: &[(String, Contents)]) -> Result<()> {
    use std::path::Path;
    let name = dir.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| "out".into());
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !parent.is_dir() {
        return Err(Error::usage(format!("the directory {} does not exist", parent.display())));
    }
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    let old = parent.join(format!(".{name}.old-{}", std::process::id()));
    let io = |e: std::io::Error, what: &Path| Error::usage(format!("cannot write {}: {e}", what.display()));
    sweep_stale(dir);
    // Ctrl-C waits for this write to end
    let _writing = writing();
    let _ = std::fs::remove_dir_all(&tmp);
    let write_all = || -> Result<()> {
        std::fs::create_dir(&tmp).map_err(|e| io(e, &tmp))?;
        for (file, contents) in files {
            let path = tmp.join(file);
            if let Some(p) = path.parent() {
                std::fs::create_dir_all(p).map_err(|e| io(e, p))?;
            }
            match contents {
                Contents::Bytes(bytes) => std::fs::write(&path, bytes).map_err(|e| io(e, &path))?,
                Contents::Writer(write) => write(&path)?,
            }
        }
        if dir.exists() {
            std::fs::rename(dir, &old).map_err(|e| io(e, dir))?;
        }
        std::fs::rename(&tmp, dir).map_err(|e| io(e, dir))?;
        let _ = std::fs::remove_dir_all(&old);
        Ok(())
    };
    let r = write_all();
    if r.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
        if old.exists() && !dir.exists() {
            let _ = std::fs::rename(&old, dir);
        }
    }
    r
}

/// Removes `.NAME.tmp-PID` and `.NAME.old-PID` siblings of `path` left by a
/// process that no longer runs (killed outright, where no handler runs).
pub fn sweep_stale(path: &std::path::Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else { return };
    let dir = if dir.as_os_str().is_empty() { std::path::Path::new(".") } else { dir };
    let name = name.to_string_lossy();
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let file = e.file_name().to_string_lossy().to_string();
        let pid = [".tmp-", ".old-"]
            .iter()
            .find_map(|k| file.strip_prefix(&format!(".{name}{k}")))
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(pid) = pid {
            if pid != std::process::id() && !alive(pid) {
                let p = e.path();
                let _ = if p.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
            }
        }
    }
}

/// Whether a process runs (Linux: /proc; elsewhere assumed, so nothing is swept).
fn alive(pid: u32) -> bool {
    let proc_dir = std::path::Path::new("/proc");
    !proc_dir.is_dir() || proc_dir.join(pid.to_string()).exists()
}

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
    sweep_stale(path);
    let _writing = writing();
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
