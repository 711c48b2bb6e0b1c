//! Private SQL servers for the tests: what the PostgreSQL cluster (`oro::pg`) and the MariaDB
//! server (`sql::mariadb`) share, run as their own system user when the tests run as root.

pub mod mariadb;

use std::path::Path;
use std::process::Command;

/// Whether the test process runs as root (CI): database servers refuse to, so they run as
/// their own user through `runuser`.
pub fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// `program` as `user` when running as root.
pub fn as_user(root: bool, user: &str, program: &Path) -> Command {
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", user, "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// Gives `dir` to `user` when running as root.
pub fn chown(root: bool, user: &str, dir: &Path) {
    if root {
        let ok = Command::new("chown").arg(format!("{user}:")).arg(dir).status().unwrap().success();
        assert!(ok, "chown {user} {}", dir.display());
    }
}
