//! Creating the query socket safely, and removing it at shutdown.
//!
//! - The socket's directory is created (mode 0755) if missing; an existing directory is left as
//!   it is.
//! - A leftover socket file from a daemon that died is replaced; one a live daemon still answers
//!   on is not (a second daemon refuses to start); a path that is not a socket is never touched.
//! - The socket is bound under umask 0177, so it never exists with a looser mode than 0600, then
//!   given its final mode: 0600, or 0660 and the configured group.
//! - At shutdown the file is removed only if it is still the one this daemon bound (same device
//!   and inode), so a daemon never deletes a successor's socket.

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::Mode;
use tokio::net::UnixListener;

/// Why the socket could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// Another daemon answers on the path.
    #[error("another watchpost daemon is already listening on {0}")]
    AlreadyRunning(PathBuf),
    /// Something other than a socket is at the path.
    #[error("{0} exists and is not a socket; refusing to replace it")]
    NotASocket(PathBuf),
    /// A file operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
}

fn io_error<'p>(
    what: &'static str,
    path: &'p Path,
) -> impl FnOnce(std::io::Error) -> SocketError + 'p {
    move |source| SocketError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// The bound socket and how to recognise its file.
#[derive(Debug)]
pub struct BoundSocket {
    /// The listener.
    pub listener: UnixListener,
    /// Its path.
    pub path: PathBuf,
    dev: u64,
    ino: u64,
}

/// Binds the socket at `path`: mode 0600, or 0660 owned by `group` when given.
pub fn bind(path: &Path, group: Option<u32>) -> Result<BoundSocket, SocketError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        std::fs::create_dir_all(dir).map_err(io_error("creating the socket directory", dir))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
            .map_err(io_error("setting the mode of", dir))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(SocketError::AlreadyRunning(path.to_path_buf()));
            }
            tracing::info!(path = %path.display(), "removing a stale socket left by an earlier daemon");
            std::fs::remove_file(path).map_err(io_error("removing the stale socket", path))?;
        }
        Ok(_) => return Err(SocketError::NotASocket(path.to_path_buf())),
        Err(_) => {}
    }

    // umask is process-wide: it is narrowed only around the bind, at start-up, before any other
    // task of the daemon creates files.
    let previous = rustix::process::umask(Mode::from_raw_mode(0o177));
    let bound = std::os::unix::net::UnixListener::bind(path);
    rustix::process::umask(previous);
    let std_listener = bound.map_err(io_error("binding", path))?;

    let mode = if group.is_some() { 0o660 } else { 0o600 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(io_error("setting the mode of", path))?;
    if let Some(gid) = group {
        std::os::unix::fs::chown(path, None, Some(gid))
            .map_err(io_error("setting the group of", path))?;
    }
    let meta = std::fs::symlink_metadata(path).map_err(io_error("inspecting", path))?;
    std_listener
        .set_nonblocking(true)
        .map_err(io_error("configuring", path))?;
    let listener = UnixListener::from_std(std_listener).map_err(io_error("registering", path))?;
    Ok(BoundSocket {
        listener,
        path: path.to_path_buf(),
        dev: meta.dev(),
        ino: meta.ino(),
    })
}

impl BoundSocket {
    /// Removes the socket file if it is still the one bound here.
    pub fn remove_file(&self) {
        remove_if_same(&self.path, self.dev, self.ino);
    }

    /// What identifies the file: (path, device, inode).
    pub fn identity(&self) -> (PathBuf, u64, u64) {
        (self.path.clone(), self.dev, self.ino)
    }
}

/// Removes `path` if it is the file (`dev`, `ino`).
pub fn remove_if_same(path: &Path, dev: u64, ino: u64) {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.dev() == dev && meta.ino() == ino => {
            if let Err(e) = std::fs::remove_file(path) {
                tracing::warn!(path = %path.display(), error = %e, "could not remove the socket");
            }
        }
        Ok(_) => {
            tracing::warn!(path = %path.display(), "socket was replaced by another file; leaving it")
        }
        Err(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_path(tag: &str) -> PathBuf {
        std::env::temp_dir()
            .join(format!("watchpost-listener-{tag}-{}", std::process::id()))
            .join("q.sock")
    }

    #[tokio::test]
    async fn binds_0600_refuses_a_live_one_replaces_a_stale_one() {
        let path = temp_path("modes");
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
        let bound = bind(&path, None).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode, 0o755);
        assert!(matches!(
            bind(&path, None),
            Err(SocketError::AlreadyRunning(_))
        ));
        // The listener goes away without removing its file: a stale socket.
        drop(bound);
        let again = bind(&path, None).unwrap();
        again.remove_file();
        assert!(!path.exists());
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[tokio::test]
    async fn group_socket_is_0660_with_the_group() {
        let path = temp_path("group");
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
        let gid = rustix::process::getegid().as_raw();
        let bound = bind(&path, Some(gid)).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o660);
        assert_eq!(meta.gid(), gid);
        bound.remove_file();
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[tokio::test]
    async fn never_replaces_a_regular_file_or_a_successor() {
        let path = temp_path("file");
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "precious").unwrap();
        assert!(matches!(bind(&path, None), Err(SocketError::NotASocket(_))));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");
        std::fs::remove_file(&path).unwrap();

        let bound = bind(&path, None).unwrap();
        let (p, dev, ino) = bound.identity();
        drop(bound);
        // Moved away (so its inode stays allocated and cannot be reused by the successor).
        let moved = path.with_extension("old");
        std::fs::rename(&path, &moved).unwrap();
        std::fs::write(&path, "successor").unwrap();
        remove_if_same(&p, dev, ino);
        assert!(path.exists(), "a file that is not ours stays");
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }
}
