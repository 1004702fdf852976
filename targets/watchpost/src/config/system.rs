//! Checks of a configuration against this machine, beyond what the file alone can tell: the
//! socket group must exist in the system's group database. `watchpost config --check` and
//! `watchpost run` both make them, so a typo in a group name fails before the daemon starts.

use std::path::Path;

use super::{Config, ConfigError, Problem};
use crate::server::access::resolve_group;

/// Every machine-dependent problem of `config`, each naming its key.
pub fn check(config: &Config, origin: Option<&Path>) -> Result<(), ConfigError> {
    let mut problems = Vec::new();
    if let Some(group) = &config.socket.group
        && let Err(e) = resolve_group(group)
    {
        problems.push(Problem {
            key: "socket.group".to_owned(),
            reason: e.to_string(),
        });
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            path: origin.map(Path::to_path_buf),
            problems,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_group_fails_the_check_by_key_and_a_known_one_passes() {
        let config =
            Config::from_toml("[socket]\ngroup = \"no-such-group-watchpost\"\n", None).unwrap();
        let e = check(&config, Some(Path::new("/etc/watchpost.toml"))).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("socket.group"), "{text}");
        assert!(text.contains("no-such-group-watchpost"), "{text}");
        let root = Config::from_toml("[socket]\ngroup = \"root\"\n", None).unwrap();
        assert!(check(&root, None).is_ok());
        assert!(check(&Config::default(), None).is_ok());
    }
}
