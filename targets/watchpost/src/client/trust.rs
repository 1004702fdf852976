//! Whom the CLI believes: the socket path alone proves nothing (a directory an attacker can write
//! to, a stale path, a typo), so after connecting the CLI asks the kernel who runs the server
//! (`SO_PEERCRED`, the credentials the listener had when it called `listen`) and refuses any
//! server not run by root, by the configured daemon user (`socket.daemon_user`), or by the caller
//! itself (a server you run yourself can tell you nothing you could not make up anyway).

use std::path::Path;

/// Why the configured daemon user could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    /// No such user name in the password file.
    #[error("no user named {name:?} in {file}")]
    Unknown {
        /// The name.
        name: String,
        /// The file searched.
        file: String,
    },
    /// The password file could not be read.
    #[error("reading {file}: {reason}")]
    Unreadable {
        /// The file.
        file: String,
        /// Why.
        reason: String,
    },
}

/// The uid of `spec`: a decimal uid, or a user name looked up in `passwd_file` (`/etc/passwd`;
/// users only known to NSS services such as LDAP must be given as numbers).
pub fn resolve_user(spec: &str, passwd_file: &Path) -> Result<u32, UserError> {
    let spec = spec.trim();
    if let Ok(uid) = spec.parse::<u32>() {
        return Ok(uid);
    }
    let file = passwd_file.display().to_string();
    let text = std::fs::read_to_string(passwd_file).map_err(|e| UserError::Unreadable {
        file: file.clone(),
        reason: e.to_string(),
    })?;
    uid_in_passwd_file(&text, spec).ok_or(UserError::Unknown {
        name: spec.to_owned(),
        file,
    })
}

/// The uid of user `name` in the text of a passwd(5) file (`name:password:uid:gid:…`).
pub fn uid_in_passwd_file(text: &str, name: &str) -> Option<u32> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let mut fields = line.split(':');
            (fields.next()? == name).then_some(())?;
            fields.next()?;
            fields.next()?.trim().parse().ok()
        })
}

/// The uids whose servers the CLI believes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTrust {
    /// The configured daemon user, if any.
    pub daemon_uid: Option<u32>,
    /// The caller's effective uid.
    pub own_uid: u32,
}

impl ServerTrust {
    /// Root, `daemon_uid` and the calling process's effective uid.
    pub fn for_caller(daemon_uid: Option<u32>) -> ServerTrust {
        ServerTrust {
            daemon_uid,
            own_uid: rustix::process::geteuid().as_raw(),
        }
    }

    /// Whether a server run by `uid` is believed.
    pub fn allows(&self, uid: u32) -> bool {
        uid == 0 || Some(uid) == self.daemon_uid || uid == self.own_uid
    }

    /// Who is believed, in words (for the refusal message).
    pub fn describe(&self) -> String {
        let mut who = vec!["root".to_owned()];
        if let Some(uid) = self.daemon_uid.filter(|&u| u != 0) {
            who.push(format!("the configured daemon user (uid {uid})"));
        }
        if self.own_uid != 0 {
            who.push(format!("you (uid {})", self.own_uid));
        }
        match who.len() {
            1 => who.remove(0),
            _ => {
                let last = who.pop().unwrap_or_default();
                format!("{} or {last}", who.join(", "))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_lookup() {
        let text = "root:x:0:0:root:/root:/bin/bash\n# c:x:5:\n\
                    watchpost:x:998:998::/nonexistent:/usr/sbin/nologin\nbad:x:nan:1::/:/bin/sh\n";
        assert_eq!(uid_in_passwd_file(text, "watchpost"), Some(998));
        assert_eq!(uid_in_passwd_file(text, "root"), Some(0));
        assert_eq!(uid_in_passwd_file(text, "bad"), None);
        assert_eq!(uid_in_passwd_file(text, "watch"), None);
        assert_eq!(resolve_user(" 42 ", Path::new("/nonexistent")), Ok(42));
        assert!(matches!(
            resolve_user("x", Path::new("/nonexistent")),
            Err(UserError::Unreadable { .. })
        ));
        assert_eq!(resolve_user("root", Path::new("/etc/passwd")), Ok(0));
        assert!(matches!(
            resolve_user("no-such-user-watchpost", Path::new("/etc/passwd")),
            Err(UserError::Unknown { .. })
        ));
    }

    #[test]
    fn who_is_believed() {
        let root_caller = ServerTrust {
            daemon_uid: None,
            own_uid: 0,
        };
        assert!(root_caller.allows(0));
        assert!(!root_caller.allows(65534));
        assert_eq!(root_caller.describe(), "root");
        let with_user = ServerTrust {
            daemon_uid: Some(998),
            own_uid: 1000,
        };
        assert!(with_user.allows(998) && with_user.allows(1000) && with_user.allows(0));
        assert!(!with_user.allows(65534));
        assert_eq!(
            with_user.describe(),
            "root, the configured daemon user (uid 998) or you (uid 1000)"
        );
    }
}
