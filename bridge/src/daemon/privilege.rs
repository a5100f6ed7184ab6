//! Privileges: once the device and FIFOs are set up, the daemon needs root no more.
//! It becomes the chosen user (by default the one who ran sudo): supplementary
//! groups, then group, then user, and finally checks that root cannot be regained.

use std::fmt;

use nix::unistd::{setgid, setgroups, setuid, Gid, Uid};

/// A user to run as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Login name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
}

/// Why privileges could not be dropped.
#[derive(Debug)]
pub enum PrivilegeError {
    /// No such user.
    UnknownUser(String),
    /// A set*id call failed.
    Drop {
        step: &'static str,
        source: nix::Error,
    },
    /// Root could be regained after dropping it.
    StillRoot,
}

impl fmt::Display for PrivilegeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownUser(n) => write!(f, "no such user {n:?}"),
            Self::Drop { step, source } => write!(f, "cannot drop root: {step} failed: {source}"),
            Self::StillRoot => write!(f, "dropped root but could regain it; refusing to run"),
        }
    }
}

impl std::error::Error for PrivilegeError {}

impl User {
    /// Looks a user up by name or numeric id.
    pub fn lookup(name: &str) -> Result<User, PrivilegeError> {
        let found = match name.parse::<u32>() {
            Ok(uid) => nix::unistd::User::from_uid(Uid::from_raw(uid)),
            Err(_) => nix::unistd::User::from_name(name),
        };
        match found {
            Ok(Some(u)) => Ok(User {
                name: u.name,
                uid: u.uid.as_raw(),
                gid: u.gid.as_raw(),
            }),
            _ => Err(PrivilegeError::UnknownUser(name.into())),
        }
    }

    /// The user who started us through sudo, if any and if not root.
    pub fn from_sudo() -> Option<User> {
        let uid: u32 = std::env::var("SUDO_UID").ok()?.parse().ok()?;
        let gid: u32 = std::env::var("SUDO_GID").ok()?.parse().ok()?;
        if uid == 0 {
            return None;
        }
        let name = std::env::var("SUDO_USER").unwrap_or_else(|_| uid.to_string());
        Some(User { name, uid, gid })
    }
}

/// Becomes `user` for good: groups, then gid, then uid, then proves root is gone.
pub fn drop_to(user: &User) -> Result<(), PrivilegeError> {
    if user.uid == 0 {
        return Ok(());
    }
    let gid = Gid::from_raw(user.gid);
    setgroups(&[gid]).map_err(|source| PrivilegeError::Drop {
        step: "setgroups",
        source,
    })?;
    setgid(gid).map_err(|source| PrivilegeError::Drop {
        step: "setgid",
        source,
    })?;
    setuid(Uid::from_raw(user.uid)).map_err(|source| PrivilegeError::Drop {
        step: "setuid",
        source,
    })?;
    if setuid(Uid::from_raw(0)).is_ok() || nix::unistd::geteuid().is_root() {
        return Err(PrivilegeError::StillRoot);
    }
    Ok(())
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn looks_up_by_name_and_id() {
        let root = User::lookup("root").unwrap();
        assert_eq!((root.uid, root.gid), (0, 0));
        assert_eq!(User::lookup("0").unwrap().name, "root");
        assert!(User::lookup("no-such-user-tunbridge").is_err());
    }
}
